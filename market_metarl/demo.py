"""``make demo``: the whole toolkit on the bundled data, in about ten minutes on 2 CPU cores.

1. the bundled data and the regimes of SPY (plot);
2. meta-train MAML and the pooled baseline on ``envs/default.toml`` (a small budget);
3. backtest on a symbol held out of training (GOOG) under both protocols, against every baseline;
4. replay a month of paper trading on SPY with the durable ledger;
5. print where the report is and a short table of results.

Every step is the command a user would type (printed before it runs), so the demo is also a tour of
the command line. Outputs go to ``out/demo/`` (replaced on each run).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from market_metarl.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "demo"
HELD_OUT = "bundled:GOOG"


def run(*argv: str) -> None:
    """Run one command as a user would, stopping the demo if it fails."""
    print(f"\n$ market-metarl {' '.join(argv)}", flush=True)
    code = cli(list(argv))
    if code != 0:
        sys.exit(code)


def summary(path: Path, title: str) -> None:
    """Print a backtest's results table from its ``metrics.json``, best Sharpe first.

    Args:
        path: The backtest's output folder (``metrics.json`` and ``report.html``).
        title: Heading of the table.
    """
    metrics = json.loads((path / "metrics.json").read_text())
    rows = metrics["strategies"]
    rec = metrics["reconciliation"]
    print(f"\n{title}  ({metrics['protocol']} protocol, {path / 'report.html'})")
    print(
        f"  backtrader vs env equity: max relative difference {rec['max_abs_rel_diff']:.1e} "
        f"(tolerance {rec['tolerance']:.0e})"
    )
    print(f"  {'strategy':<15} {'Sharpe':>7} {'total return':>13} {'max drawdown':>13}")
    for name, m in sorted(rows.items(), key=lambda kv: -kv[1]["sharpe"]):
        print(
            f"  {name:<15} {m['sharpe']:>7.2f} {m['total_return']:>12.1%} {m['max_drawdown']:>13.1%}"
        )


def main() -> None:
    """Run the five steps into ``out/demo/`` (removed first), exiting if a command fails."""
    started = time.perf_counter()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    run_dir, cfg = OUT / "run", str(ROOT / "envs" / "default.toml")

    print("== 1. data and regimes")
    run("data", "list")
    run("data", "show", "bundled:SPY")
    run(
        "regimes",
        "bundled:SPY",
        "--method",
        "hmm",
        "--out",
        str(OUT / "regimes_spy.csv"),
        "--plot",
        str(OUT / "regimes_spy.png"),
    )

    print("\n== 2. meta-training (MAML and the pooled baseline)")
    run(
        "train",
        "--config",
        cfg,
        "--algo",
        "maml",
        "--out",
        str(run_dir),
    )

    print(f"\n== 3. backtests on {HELD_OUT}, a symbol never trained on")
    for protocol in ("regime", "rolling"):
        run(
            "backtest",
            "--run",
            str(run_dir),
            "--data",
            HELD_OUT,
            "--protocol",
            protocol,
            "--out",
            str(OUT / f"backtest_{protocol}"),
        )

    print("\n== 4. a month of paper trading, replayed day by day")
    db = str(OUT / "paper.db")
    run("paper", "init", "--run", str(run_dir), "--feed", "bundled:SPY", "--db", db)
    run("paper", "run", "--db", db, "--start", "2021-03-01", "--asof", "2021-03-31")
    run("paper", "status", "--db", db)

    print("\n== 5. results")
    summary(OUT / "backtest_regime", f"{HELD_OUT}, regimes known in hindsight")
    summary(OUT / "backtest_rolling", f"{HELD_OUT}, deployable rolling adaptation")
    minutes = (time.perf_counter() - started) / 60
    print(f"\nreport: {OUT / 'backtest_regime' / 'report.html'}")
    print(f"regimes plot: {OUT / 'regimes_spy.png'}")
    print(f"demo finished in {minutes:.1f} minutes")


if __name__ == "__main__":
    main()
