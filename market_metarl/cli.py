"""The ``market-metarl`` command line (also ``python -m market_metarl``).

Exit codes: 0 success; 2 bad input, with one line ``error: ...`` on stderr and no traceback; 1 for
anything unexpected. Heavy libraries are imported inside the handlers, so ``--help`` and
``data list`` answer fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from market_metarl.parallel import Backend

ALGOS = ("maml", "rl2", "pooled", "model_based", "pearl")
"""As :data:`market_metarl.meta.experiment.ALGOS` (not imported: ``--help`` must stay fast)."""

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad command-line usage (turned into exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line instead of usage text and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _data_list(args: argparse.Namespace) -> int:
    import csv

    from market_metarl.data.paths import data_dir, list_cached

    print(f"{'symbol':<8} {'first':<10}  {'last':<10}  {'rows':>6}  licence")
    with (data_dir() / "MANIFEST.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            print(
                f"bundled:{row['symbol']:<8} {row['first_date']:<10}  {row['last_date']:<10}  "
                f"{row['rows']:>6}  {row['licence']}"
            )
    for symbol, path in list_cached():
        print(f"yfinance:{symbol:<7} (cached at {path})")
    return EXIT_OK


def _data_show(args: argparse.Namespace) -> int:
    from market_metarl.data.sources import load_bars_with_report

    bars, report = load_bars_with_report(args.source)
    print(f"source   {args.source}")
    print(f"rows     {report.rows}")
    print(f"first    {bars.index[0].date()}")
    print(f"last     {bars.index[-1].date()}")
    print(f"columns  {', '.join(bars.columns)}")
    last = bars.iloc[-1]
    print(
        f"last bar open {last.open:.4f}  high {last.high:.4f}  low {last.low:.4f}  "
        f"close {last.close:.4f}  volume {last.volume:.0f}"
    )
    for note in report.notes:
        print(f"note     {note}")
    for warning in report.warnings:
        print(f"warning  {warning}")
    if not report.notes and not report.warnings:
        print("valid    no problems found")
    return EXIT_OK


def _data_fetch(args: argparse.Namespace) -> int:
    from market_metarl.data.yahoo import cache_path, fetch_yfinance

    reports = fetch_yfinance(args.symbols, start=args.start, end=args.end)
    for symbol, report in reports.items():
        first = report.first.date() if report.first is not None else "-"
        last = report.last.date() if report.last is not None else "-"
        print(f"{symbol}: {report.rows} rows {first} .. {last} -> {cache_path(symbol)}")
    return EXIT_OK


def _regimes(args: argparse.Namespace) -> int:
    from market_metarl.data.regimes import regimes_to_frame, slice_regimes
    from market_metarl.data.sources import load_bars
    from market_metarl.data.tasks import symbol_name

    bars = load_bars(args.source)
    params = dict(_parse_param(p) for p in args.param)
    found = slice_regimes(
        bars, args.method, symbol_name(args.source), args.min_length, args.seed, **params
    )
    frame = regimes_to_frame(found, bars)
    if args.out:
        _write_atomic_text(Path(args.out), frame.to_csv(index=False))
    if args.plot:
        from market_metarl.data.plotting import plot_regimes

        plot_regimes(bars, found, args.plot, title=f"{args.source}: {args.method} regimes")
    print(frame.to_string(index=False))
    return EXIT_OK


def _train(args: argparse.Namespace) -> int:
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.trainer import TrainEvent, train, with_iterations
    from market_metarl.seeding import seed_everything

    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations must be >= 1, got {args.iterations}")
    _check_backend(args)
    seed_everything(args.seed)
    exp = with_iterations(Experiment.from_file(args.config), args.iterations)
    algo = args.algo or exp.train.algo
    print(f"{len(exp.tasks.split('train'))} train tasks, {len(exp.tasks.split('test'))} test tasks")
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_event(event: TrainEvent) -> None:
        bar = bars.get(event.learner)
        if bar is None:
            bar = bars[event.learner] = tqdm(total=event.total, desc=event.learner, unit="it")
        bar.update(event.iteration - bar.n)
        bar.set_postfix({k: f"{v:.3g}" for k, v in event.metrics.items()})
        if event.iteration == event.total:
            bar.close()

    with _backend(args) as backend:
        run_dir = train(
            exp,
            algo,
            args.out,
            seed=args.seed,
            resume=args.resume,
            on_event=on_event,
            backend=backend,
        )
    print(f"run written to {run_dir}")
    return EXIT_OK


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where independent pieces run: this process (default) or Ray "
        "(pip install 'market-metarl[distributed]')",
    )
    p.add_argument(
        "--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)"
    )
    p.add_argument("--workers", type=int, help="CPUs of a local Ray (default: all cores)")


def _check_backend(args: argparse.Namespace) -> None:
    """Fail fast, before any data is loaded, on backend options that cannot work."""
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.backend == "ray":
        import os

        from market_metarl.parallel import check_reachable, import_ray

        import_ray()
        address = args.address or os.environ.get("RAY_ADDRESS")
        if address:
            check_reachable(address)
    elif args.address:
        raise UsageError("--address names a Ray cluster; use it with --backend ray")


@contextmanager
def _backend(args: argparse.Namespace) -> Iterator[Backend]:
    from market_metarl.parallel import get_backend

    backend = get_backend(args.backend, args.address, args.workers)
    try:
        yield backend
    finally:
        backend.close()


def _sweep(args: argparse.Namespace) -> int:
    from market_metarl.config import read_toml
    from market_metarl.meta.sweep import parse_grid, run_sweep, table_lines

    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations must be >= 1, got {args.iterations}")
    _check_backend(args)
    cfg = read_toml(args.config)
    if args.iterations is not None:
        cfg.setdefault("train", {})["iterations"] = args.iterations
    grid = parse_grid(args.grid)
    algo = args.algo or str(cfg.get("train", {}).get("algo", "maml"))
    with _backend(args) as backend:
        result = run_sweep(
            cfg, algo, args.seeds, grid, args.out, backend, args.seed, args.split, progress=True
        )
    print(
        f"{result.ran} runs trained now, {result.skipped} found finished; "
        f"scored on the {result.split} tasks (mean post-adaptation Sharpe, 95% CI)"
    )
    if result.split == "test":
        print("note: the config has no val split, so the best score here is optimistic for test")
    for line in table_lines(result.rows, [k for k, _ in grid]):
        print(line)
    print(f"table written to {result.out / 'sweep.csv'}")
    return EXIT_OK


def _backtest(args: argparse.Namespace) -> int:
    from market_metarl.backtest.runner import run_backtest

    for name in ("adapt_days", "every", "seeds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    _check_backend(args)
    with _backend(args) as backend:
        out = run_backtest(
            args.run,
            args.data,
            protocol=args.protocol,
            adapt_days=args.adapt_days,
            start=args.start,
            end=args.end,
            seeds=args.seeds,
            out_dir=args.out,
            every=args.every,
            progress=True,
            backend=backend,
        )
    print(f"backtest written to {out} (report: {out / 'report.html'})")
    return EXIT_OK


def _parse_param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--param {text!r} must look like key=value, e.g. n_states=3")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def _write_atomic_text(path: Path, text: str) -> None:
    import os

    if path.parent and not path.parent.exists():
        raise UsageError(f"output folder {path.parent} does not exist; create it first")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="market-metarl",
        description="Meta-RL that adapts trading strategies to new market regimes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="bundled datasets, sources and the download cache")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    p = data_sub.add_parser("list", help="bundled datasets and cached downloads")
    p.set_defaults(handler=_data_list)
    p = data_sub.add_parser("show", help="rows, date range and validation report of a source")
    p.add_argument("source", help="bundled:SPY, csv:FILE, yfinance:SPY or synthetic:NAME")
    p.set_defaults(handler=_data_show)
    p = data_sub.add_parser("fetch", help="download daily bars with yfinance into the cache")
    p.add_argument("symbols", nargs="+", metavar="SYMBOL")
    p.add_argument("--start", help="first date, YYYY-MM-DD (default: all history)")
    p.add_argument("--end", help="last date, YYYY-MM-DD (default: today)")
    p.set_defaults(handler=_data_fetch)

    p = sub.add_parser("regimes", help="slice a source into labelled regimes")
    p.add_argument("source", help="bundled:SPY, csv:FILE, yfinance:SPY or synthetic:NAME")
    p.add_argument("--method", required=True, choices=["window", "trend-vol", "hmm", "changepoint"])
    p.add_argument("--min-length", type=int, default=40, help="fewest bars per regime")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="method parameter"
    )
    p.add_argument("--out", help="write the regimes as CSV")
    p.add_argument("--plot", help="write a PNG of the price with regimes shaded")
    p.set_defaults(handler=_regimes)
    p = sub.add_parser("train", help="meta-train an algorithm and the pooled baseline")
    p.add_argument("--config", required=True, help="task distribution, e.g. envs/default.toml")
    p.add_argument(
        "--algo",
        choices=list(ALGOS),
        help="default: [train] algo",
    )
    p.add_argument("--out", required=True, help="run directory, e.g. runs/default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, help="override [train] iterations")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    _add_backend(p)
    p.set_defaults(handler=_train)
    p = sub.add_parser("backtest", help="backtest a trained run against baselines in backtrader")
    p.add_argument("--run", required=True, help="trained run directory, e.g. runs/default")
    p.add_argument(
        "--data", help="source traded (bundled:GOOG, csv:FILE...); default: the run's test tasks"
    )
    p.add_argument("--protocol", choices=["regime", "rolling"], default="regime")
    p.add_argument("--adapt-days", type=int, help="K support days (default: [train] adapt_days)")
    p.add_argument("--every", type=int, default=20, help="R days between adaptations (rolling)")
    p.add_argument("--start", help="first date traded, YYYY-MM-DD")
    p.add_argument("--end", help="last date read, YYYY-MM-DD")
    p.add_argument("--seeds", type=int, default=1, help="seeds of the seeded baselines")
    p.add_argument("--out", required=True, help="output folder (metrics.json, report.html...)")
    _add_backend(p)
    p.set_defaults(handler=_backtest)
    p = sub.add_parser("sweep", help="train and score every setting x seed (resumable)")
    p.add_argument("--config", required=True, help="base config, e.g. envs/synthetic.toml")
    p.add_argument("--algo", choices=list(ALGOS), help="default: [train] algo")
    p.add_argument("--seeds", type=int, default=1, help="seeds per setting (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument(
        "--grid",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=V1,V2",
        help="setting to vary, e.g. train.hidden=16,32 (a bare key is a [train] key)",
    )
    p.add_argument("--iterations", type=int, help="override [train] iterations")
    p.add_argument("--split", choices=["auto", "val", "test"], default="auto", help="tasks scored")
    p.add_argument("--out", required=True, help="sweep folder; rerun the command to resume")
    _add_backend(p)
    p.set_defaults(handler=_sweep)
    for register in _EXTENSIONS:
        register(sub)
    return parser


_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []
"""Registrars of later layers' subcommands (train, backtest, paper)."""


def _paper(args: argparse.Namespace) -> int:
    from market_metarl.live.commands import run_command

    return run_command(args)


def _add_paper(sub: argparse._SubParsersAction) -> None:
    paper = sub.add_parser("paper", help="paper trading: adapt daily, trade, keep a ledger")
    paper_sub = paper.add_subparsers(dest="paper_command", required=True, parser_class=_Parser)
    helps = {
        "init": "create the ledger of a paper account for a trained run and a feed",
        "step": "the daily step: adapt, decide, guard, submit, record (once per as-of date)",
        "run": "step once per trading day (replay: through --asof), resume, stop on SIGINT/TERM",
        "status": "positions, equity, PnL against buy-and-hold, adaptation and guardrails",
        "reset": "clear the kill switch and the fallback to the pooled policy",
    }
    for name, text in helps.items():
        p = paper_sub.add_parser(name, help=text)
        p.add_argument("--db", required=True, help="ledger file (SQLite), e.g. paper/spy.db")
        if name in ("init", "step", "run"):
            need = name == "init"
            p.add_argument("--run", required=need, help="trained run directory, e.g. runs/NAME")
            p.add_argument("--feed", required=need, help="yfinance:SPY, or bundled:SPY (replay)")
        if name in ("step", "run"):
            p.add_argument("--asof", help="as-of trading day YYYY-MM-DD (run: the last one)")
        if name == "run":
            p.add_argument("--start", help="first as-of day of an account not stepped yet")
            p.add_argument("--every", type=float, help="seconds between steps (default: daily)")
        if name == "init":
            p.add_argument("--cash", type=float, help="initial cash (default: [paper] cash)")
            p.add_argument("--adapt-days", type=int, help="K (default: the run's adapt_days)")
            p.add_argument("--adapt-every", type=int, help="R (default: [paper] every, 20)")
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
        p.set_defaults(handler=_paper)


_EXTENSIONS.append(_add_paper)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # Imported after parsing: types imports pandas, which `--help` must not wait for.
    from market_metarl.types import MarketMetaRLError

    try:
        return int(args.handler(args))
    except (UsageError, MarketMetaRLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
