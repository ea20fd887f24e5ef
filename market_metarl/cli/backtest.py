"""``market-metarl backtest``: a trained run against its baselines, in backtrader."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from market_metarl.cli._common import (
    EXIT_OK,
    SubParsers,
    add_backend,
    add_json,
    backend_of,
    check_backend,
    print_json,
    require_positive,
    text_to_stderr,
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
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the backtest into ``--out`` and say where its report is."""
    from market_metarl.backtest.runner import run_backtest

    require_positive(args, "adapt_days", "every", "seeds")
    check_backend(args)
    with text_to_stderr(args), backend_of(args) as backend:
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
    if args.json:
        print_json(_summary(out))
    return EXIT_OK


SUMMARY_KEYS = ("run", "algo", "data", "protocol", "adapt_days", "every", "horizon", "symbols")
"""The entries of ``metrics.json`` that the ``--json`` object repeats, besides ``strategies``."""


def _summary(out: Path) -> dict[str, Any]:
    """The ``--json`` object of ``backtest``: where it is, and each strategy's figures."""
    doc = json.loads((out / "metrics.json").read_text())
    return {
        "out": str(out),
        "report": str(out / "report.html"),
        "metrics_file": str(out / "metrics.json"),
        **{k: doc[k] for k in SUMMARY_KEYS},
        "strategies": doc["strategies"],
    }
