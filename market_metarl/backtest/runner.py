"""``run_backtest``: every strategy through a protocol, backtrader and the env's books, to files.

Phases: open the run and build the markets (:mod:`~market_metarl.backtest.markets`); compute each
strategy's target weights (per seed for seeded strategies) and book them in backtrader and with
the env simulator, one independent piece per strategy, seed and market
(:mod:`~market_metarl.backtest.booking`); compute metrics and statistics
(:mod:`~market_metarl.backtest.figures`, :mod:`~market_metarl.backtest.daily`); write
``metrics.json``, ``positions.csv``, ``returns.csv``, the PNGs and ``report.html``
(:mod:`~market_metarl.backtest.outputs`), swapped into ``out_dir`` only when everything is
written. The baselines' settings come from the run's ``[backtest]`` table
(:mod:`~market_metarl.backtest.settings`). The strategies come from one registry
(:mod:`~market_metarl.backtest.strategies`); the records from
:mod:`~market_metarl.backtest.results`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from market_metarl.backtest.booking import Job, Piece, backtest_piece, native_check
from market_metarl.backtest.figures import (
    PPY,
    RETURNS_CSV_NOTE,
    RETURNS_NOTE,
    reconciliation,
    statistics,
)
from market_metarl.backtest.markets import (
    HINDSIGHT_NOTE,
    PROTOCOLS,
    DataSpec,
    Market,
    Protocol,
    data_sources,
    regime_markets,
    rolling_markets,
    stamp,
)
from market_metarl.backtest.outputs import check_out, write_outputs
from market_metarl.backtest.results import Backtest, BacktestBook
from market_metarl.backtest.settings import BacktestSettings, backtest_settings
from market_metarl.backtest.strategies import (
    check_strategies,
    load_learned,
    seeds_of,
    strategy_names,
)
from market_metarl.data.sources import load_bars
from market_metarl.envs.costs import CostModel
from market_metarl.meta.contracts import check_adapt_days
from market_metarl.meta.run import TrainedRun
from market_metarl.parallel import LOCAL, Backend
from market_metarl.types import ConfigError, RunError


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def check_inputs(
    data_spec: DataSpec, start: dt.date | str | None, end: dt.date | str | None
) -> None:
    """Read every source traded and parse the dates, so bad input fails before any long work.

    The bars are cached (:func:`~market_metarl.data.sources.load_bars`): the markets read them
    again for free.
    """
    for when in (start, end):
        stamp(when)
    for source in data_sources(data_spec) or []:
        load_bars(source)


def _markets(
    run: TrainedRun,
    data: DataSpec,
    protocol: Protocol,
    k: int,
    every: int,
    start: dt.date | str | None,
    end: dt.date | str | None,
) -> list[Market]:
    """The run's markets under the protocol (after checking K)."""
    check_adapt_days(k, "--adapt-days")
    if protocol == "regime":
        return regime_markets(run, data, k, run.horizon, start, end)
    return rolling_markets(run, data, k, every, start, end)


def _run_pieces(
    job: Job, units: list[tuple[str, int, int]], progress: bool, backend: Backend | None
) -> list[Piece]:
    """Every piece through ``backend``, in the order of ``units`` whatever order they finish."""
    from tqdm import tqdm

    pieces: list[Piece | None] = [None] * len(units)
    with tqdm(total=len(units), desc="backtest", unit="run", disable=not progress) as bar:
        for index, piece in (backend or LOCAL).imap(backtest_piece, units, job):
            pieces[index] = piece
            bar.set_postfix_str(f"{units[index][0]} {job.markets[units[index][2]].symbol}")
            bar.update(1)
    return [p for p in pieces if p is not None]


def _assemble(
    units: list[tuple[str, int, int]], pieces: list[Piece], markets: list[Market]
) -> tuple[list[BacktestBook], dict[str, list[np.ndarray]], dict[str, dict[str, Any]]]:
    """The books, the zero-shot task returns by symbol and the rules' fits, in ``units`` order."""
    accounts: list[BacktestBook] = []
    zero_shot: dict[str, list[np.ndarray]] = {}
    fits: dict[str, dict[str, Any]] = {}
    for (name, _, m), piece in zip(units, pieces, strict=True):
        accounts.append(replace(piece.account, market=markets[m]))  # one copy of each market
        if piece.zero_shot is not None:
            zero_shot.setdefault(markets[m].symbol, []).extend(piece.zero_shot)
        if piece.fit is not None:
            fits.setdefault(name, {})[markets[m].symbol] = piece.fit
    return accounts, zero_shot, fits


def compute(
    run: TrainedRun,
    data: DataSpec,
    protocol: Protocol,
    adapt_days: int | None = None,
    every: int = 20,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    seeds: int = 1,
    strategies: Sequence[str] | None = None,
    progress: bool = False,
    backend: Backend | None = None,
    settings: BacktestSettings | None = None,
    batched: bool = True,
) -> Backtest:
    """Run every strategy through the protocol and both books (no files written).

    Each ``(strategy, seed, market)`` is an independent piece run by ``backend`` (default:
    in this process); results are assembled in the same order whatever backend ran them.
    ``strategies`` defaults to every strategy of the registry and must include ``adapted``;
    ``settings`` to the run's ``[backtest]`` table. ``batched=False`` runs the gradient agents'
    blocks one by one, day by day (the reference path of the fast one; see
    :func:`~market_metarl.backtest.markets.schedule`).
    """
    _check_protocol(protocol)
    if run.n_assets != 1:
        raise RunError(f"the backtest trades one asset; this run's policies trade {run.n_assets}")
    names = check_strategies(strategy_names() if strategies is None else strategies)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    k = adapt_days if adapt_days is not None else run.adapt_days
    settings = settings or backtest_settings(run.section("backtest"))
    markets = _markets(run, data, protocol, k, every, start, end)
    model = CostModel.from_spec(run.costs, PPY)
    cash = run.env_spec.initial_cash
    units = [
        (s, seed, m) for s in names for seed in seeds_of(s, seeds) for m in range(len(markets))
    ]
    load_learned(run, names)  # every checkpoint read before the progress bar starts
    job = Job(run, markets, protocol, k, every, model, cash, settings, batched)
    accounts, zero_shot, fits = _assemble(
        units, _run_pieces(job, units, progress, backend), markets
    )
    native, native_equity = native_check(accounts[0], model, cash)
    costs = {f: float(getattr(run.costs, f)) for f in run.costs.__dataclass_fields__}
    return Backtest(
        protocol,
        k,
        run.horizon,
        every,
        seeds,
        markets,
        accounts,
        zero_shot,
        costs,
        native,
        native_equity,
        fits,
    )


def _metrics_doc(
    run: TrainedRun,
    run_dir: str | Path,
    data_spec: DataSpec,
    bt: Backtest,
    stats: dict[str, Any],
    settings: BacktestSettings,
) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    sources = data_sources(data_spec)
    return {
        "run": str(run_dir),
        "algo": run.algo,
        "data": ",".join(sources) if sources else "run test tasks",
        "protocol": bt.protocol,
        "adapt_days": bt.adapt_days,
        "horizon": bt.horizon if bt.protocol == "regime" else None,
        "every": bt.every if bt.protocol == "rolling" else None,
        "seeds": bt.seeds,
        "hindsight": bt.protocol == "regime",
        "note": HINDSIGHT_NOTE,
        "periods_per_year": PPY,
        "returns": RETURNS_NOTE,
        "costs": bt.costs,
        "tasks": sum(len(m.segments) for m in bt.markets),
        "symbols": [m.symbol for m in bt.markets],
        "strategies": stats["figures"],
        "confidence_intervals": stats["intervals"],
        "p_beats": stats["p_beats"],
        "deflated_sharpe": stats["deflated"],
        "reconciliation": reconciliation(bt),
        "paired_intervals": stats["paired"],
        **stats["assets"],
        "backtest_settings": asdict(settings),
        "fits": bt.fits,
        "returns_csv": RETURNS_CSV_NOTE,
    }


def run_backtest(
    run_dir: str | Path,
    data_spec: DataSpec,
    protocol: str = "regime",
    adapt_days: int | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    seeds: int = 1,
    out_dir: str | Path = "backtest",
    every: int = 20,
    n_boot: int = 1000,
    bootstrap_seed: int = 0,
    progress: bool = False,
    backend: Backend | None = None,
    settings: BacktestSettings | None = None,
) -> Path:
    """Backtest a trained run and write its results (see the module docstring).

    Args:
        run_dir: The trained run (``runs/NAME``).
        data_spec: Source(s) of the bars traded (``bundled:GOOG``, ``csv:FILE``...; several as a
            list or one comma-separated string), or None for the run's own held-out test tasks.
        protocol: ``regime`` or ``rolling``.
        adapt_days: K (default: the run's ``train.adapt_days``).
        start: First date traded.
        end: Last date read.
        seeds: Seeds of the seeded strategies (``scratch``).
        out_dir: Output folder (created; an earlier backtest there is replaced).
        every: R, days between adaptations (rolling).
        n_boot: Bootstrap replicates.
        bootstrap_seed: Seed of the bootstrap's generator.
        progress: Show a progress bar.
        backend: Where the strategy x seed x market pieces run (default: this process).
        settings: The baselines' and paired bootstrap's settings (default: the run's
            ``[backtest]`` table).

    Returns:
        The output folder.
    """
    out = Path(out_dir)
    check_out(out)
    _check_protocol(protocol)
    check_inputs(data_spec, start, end)  # bad input fails before the run is opened
    run = TrainedRun.open(run_dir)
    doc, bt = evaluate(
        run, data_spec, protocol, adapt_days, start, end, seeds, every, n_boot, bootstrap_seed,
        progress=progress, backend=backend, settings=settings, run_label=str(run_dir),
    )  # fmt: skip
    return write_outputs(out, doc, bt)


def evaluate(
    run: TrainedRun,
    data_spec: DataSpec,
    protocol: str = "regime",
    adapt_days: int | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    seeds: int = 1,
    every: int = 20,
    n_boot: int = 1000,
    bootstrap_seed: int = 0,
    progress: bool = False,
    backend: Backend | None = None,
    settings: BacktestSettings | None = None,
    run_label: str | None = None,
    strategies: Sequence[str] | None = None,
) -> tuple[dict[str, Any], Backtest]:
    """The backtest of an opened run, in memory: ``metrics.json``'s content and the books.

    Arguments as :func:`run_backtest`'s; ``run_label`` (default ``run.path``) is the run's name
    in ``metrics.json``, ``strategies`` as :func:`compute`'s.
    :func:`~market_metarl.backtest.outputs.write_outputs` writes the result.
    """
    settings = settings or backtest_settings(run.section("backtest"))
    bt = compute(
        run, data_spec, protocol, adapt_days, every, start, end, seeds,  # type: ignore[arg-type]
        strategies=strategies, progress=progress, backend=backend, settings=settings,
    )  # fmt: skip
    stats = statistics(bt, n_boot, np.random.default_rng(bootstrap_seed), settings.block_days)
    label = run_label if run_label is not None else str(run.path)
    return _metrics_doc(run, label, data_spec, bt, stats, settings), bt
