"""A rolling backtest of one asset with every strategy: batched gradient agents against day by day.

Trains a small run (``--config``, ``--algo``, ``--iterations``; the fine-tune and scratch
baselines keep the config's steps, 10 and 50 in ``envs/default.toml``), then backtests it on
``--data`` over ``--years`` years ending ``--end`` under the rolling protocol (R = ``--every``),
every strategy of the registry, in memory (:func:`~market_metarl.backtest.runner.evaluate`:
targets, both books, statistics; no files written). Each round runs the old path
(``batched=False``: every block adapted and acted day by day) and the new one (``batched=True``:
:mod:`~market_metarl.meta.batched`), alternating which goes first; figures are medians (imports warmed first). It also
checks that both paths give the same positions (largest gap per strategy, against 1e-5). Both
paths adapt with the same batched products (``GradientAgent.adapt`` is ``adapt_many`` on a batch
of one); the old one does so block by block, acting day by day through ``act_days``.

Goal (issue 17, item 1): the rolling backtest of one asset-decade with all strategies >= 3x faster.

Usage: ``python benchmarks/backtest_speed.py [--years 10] [--rounds 3] [--quick]
[--workdir DIR]``; ``--quick`` is 2 years and 1 round. The last line printed is one JSON object:
``seconds`` (median wall seconds, ``old`` and ``new``), ``speedup``, ``max_position_gap``
(per strategy), ``same_positions``, and the settings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5


def timed_backtest(run: Any, args: argparse.Namespace, batched: bool) -> tuple[float, Any]:
    """Wall seconds of one in-memory rolling backtest, and its books."""
    from market_metarl.backtest.figures import statistics as stats_of
    from market_metarl.backtest.runner import compute
    from market_metarl.backtest.settings import backtest_settings

    start = pd.Timestamp(args.end) - pd.DateOffset(years=args.years)
    t0 = time.perf_counter()
    bt = compute(
        run, args.data, "rolling", every=args.every, start=start.date(), end=args.end,
        batched=batched,
    )  # fmt: skip
    block = backtest_settings(run.section("backtest")).block_days
    stats_of(bt, args.n_boot, np.random.default_rng(0), block)
    return time.perf_counter() - t0, bt


def warm_imports() -> None:
    """Import what a backtest imports on first use, so no round pays for it (hmmlearn: seconds)."""
    import backtrader  # noqa: F401
    import hmmlearn.hmm  # noqa: F401
    import tqdm  # noqa: F401


def position_gaps(old: Any, new: Any) -> dict[str, float]:
    """Largest absolute difference of the target weights, per book."""
    return {
        a.label: float(np.abs(a.targets.to_numpy() - b.targets.to_numpy()).max())
        for a, b in zip(old.accounts, new.accounts, strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="envs/default.toml")
    parser.add_argument("--algo", default="maml")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--data", default="bundled:GOOG")
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--end", default="2020-12-31")
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 years, 1 round")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.years, args.rounds = 2, 1
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.run import TrainedRun
    from market_metarl.meta.trainer import train, with_iterations

    work = args.workdir or Path(tempfile.mkdtemp(prefix="backtest-speed-"))
    run_dir = work / "run"
    if not (run_dir / "run.json").is_file():
        train(
            with_iterations(Experiment.from_file(args.config), args.iterations), args.algo, run_dir
        )
    run = TrainedRun.open(run_dir)
    warm_imports()
    seen: dict[str, list[float]] = {"old": [], "new": []}
    books: dict[str, Any] = {}
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for label in order:
            seconds, books[label] = timed_backtest(run, args, batched=label == "new")
            seen[label].append(seconds)
            print(f"round {r}: {label} {seconds:8.2f} s", flush=True)
    gaps = position_gaps(books["old"], books["new"])
    median = {k: statistics.median(v) for k, v in seen.items()}
    result = {
        "config": args.config,
        "algo": args.algo,
        "data": args.data,
        "years": args.years,
        "end": args.end,
        "every": args.every,
        "rounds": args.rounds,
        "strategies": len(gaps),
        "seconds": median,
        "all_seconds": seen,
        "speedup": median["old"] / median["new"],
        "max_position_gap": gaps,
        "same_positions": max(gaps.values()) <= TOL,
    }
    print(
        f"rolling backtest, {args.data}, {args.years} years, {len(gaps)} books: "
        f"{median['old']:.1f} s day by day, {median['new']:.1f} s batched "
        f"({result['speedup']:.2f}x); largest position gap {max(gaps.values()):.1e} "
        f"(same within {TOL:g}: {result['same_positions']})"
    )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
