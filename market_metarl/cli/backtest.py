"""``market-metarl backtest``: a trained run against its baselines, in backtrader."""

from __future__ import annotations

import argparse

from market_metarl.cli._common import (
    EXIT_OK,
    SubParsers,
    add_backend,
    backend_of,
    check_backend,
    require_positive,
)


def register(sub: SubParsers) -> None:
    """Add ``backtest``."""
    p = sub.add_parser("backtest", help="backtest a trained run against baselines in backtrader")
    p.add_argument("--run", required=True, help="trained run directory, e.g. runs/default")
    p.add_argument(
        "--data",
        help="source(s) traded, comma-separated (bundled:GOOG or bundled:SPY,bundled:QQQ,"
        "csv:FILE); several are reported per asset and as an equal-weight portfolio; "
        "default: the run's test tasks",
    )
    p.add_argument("--protocol", choices=["regime", "rolling"], default="regime")
    p.add_argument("--adapt-days", type=int, help="K support days (default: [train] adapt_days)")
    p.add_argument("--every", type=int, default=20, help="R days between adaptations (rolling)")
    p.add_argument("--start", help="first date traded, YYYY-MM-DD")
    p.add_argument("--end", help="last date read, YYYY-MM-DD")
    p.add_argument("--seeds", type=int, default=1, help="seeds of the seeded baselines")
    p.add_argument("--out", required=True, help="output folder (metrics.json, report.html...)")
    add_backend(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the backtest into ``--out`` and say where its report is."""
    from market_metarl.backtest.runner import run_backtest

    require_positive(args, "adapt_days", "every", "seeds")
    check_backend(args)
    with backend_of(args) as backend:
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
