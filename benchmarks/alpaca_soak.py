"""The Alpaca soak: one paper account on the fake Alpaca server for a simulated month, killed and
refused at seeded moments; counts what happened and checks nothing was sent twice.

Trains a tiny run (``tests/faults``' tiny config, pooled), creates an Alpaca account on the fake
server (``tests/live/alpaca_fake.py``, in this process), turns on the fake's seeded chaos (each
request answered 429/500/503/504, or an order POST taken and answered 504, with probability
``--error-rate``), then steps ``--sessions`` sessions from ``--first`` with ``paper step`` in
children forked from a warm server, ``--kills`` of them SIGKILLed at a seeded moment and run again
(``tests/live/alpaca_soak.py``). At the end it checks the ledger's invariants
(``tests/live/live_helpers.py``'s ``check_invariants``, for one symbol or several: each order one
``(day, symbol)`` of a step under its deterministic client id) and compares the broker's orders
with the ledger's (duplicates: an order at the broker twice, twice for one symbol and evening, or
not the one the ledger sent; missing: one the ledger sent that the broker lacks, or one still only
written ahead) and the per-symbol positions and the cash: the same check as
``tests/live/test_alpaca_soak.py``.

Goal (issue 18): zero duplicate or missing orders and no reconciliation difference, whatever the
kills and errors.

Usage: ``python benchmarks/alpaca_soak.py [--symbols SPY] [--sessions 21] [--kills 10] [--seed 7]
[--error-rate 0.05] [--quick]`` (``--quick``: 8 sessions, 4 kills). The last line printed is one
JSON object: ``sessions``, ``runs``, ``kills``, ``failed_runs``, ``injected`` (by kind),
``posts``, ``orders_sent``, ``orders_expired``, ``duplicates``, ``missing``, ``steps`` (the
ledger's, invariants checked), ``reconciliations``, ``differences``, ``max_difference``,
``seconds``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "live"), str(ROOT / "tests" / "faults")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", default="SPY", help="comma-separated: one account over them")
    parser.add_argument("--sessions", type=int, default=21)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--error-rate", type=float, default=0.05)
    parser.add_argument("--first", default="2019-03-01", help="first session")
    parser.add_argument("--quick", action="store_true", help="8 sessions, 4 kills")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.kills = 8, 4
    symbols = args.symbols.split(",")

    import pandas as pd
    from alpaca_fake import FakeAlpaca
    from alpaca_soak import Runner, open_prices, session_days, soak
    from fault_helpers import TINY_TOML, TRAIN

    from market_metarl.cli import main as cli
    from market_metarl.data.sources import load_bars
    from market_metarl.live import alpaca_client
    from market_metarl.live.account import BrokerChoice, init_account

    bars = {s: load_bars(f"bundled:{s}") for s in symbols}
    days = session_days(args.first, args.sessions + 1)
    opens = open_prices(symbols, days)
    work = Path(tempfile.mkdtemp(prefix="alpaca-soak-"))
    (work / "tiny.toml").write_text(TINY_TOML)
    os.chdir(work)
    assert cli([*TRAIN, "--out", "run"]) == 0
    fake = FakeAlpaca(pd.DatetimeIndex(bars[symbols[0]].index).date).start()
    os.environ.update(
        {
            alpaca_client.KEY_ENV: "PKSOAK",
            alpaca_client.SECRET_ENV: "soak-secret",
            alpaca_client.URL_ENV: fake.url,
            alpaca_client.RETRY_WAIT_ENV: "0.01",
        }
    )
    fake.evening(days[0])
    db = work / "soak.db"
    init_account(
        db, work / "run", ",".join(f"bundled:{s}" for s in symbols), broker=BrokerChoice("alpaca")
    )
    fake.inject(args.seed, args.error_rate)
    runner = Runner(work, symbols)
    try:
        report = soak(db, fake, runner, days[:-1], opens, args.kills, args.seed)
    finally:
        runner.close()
        fake.stop()
    print("\n".join(report.lines()))
    print(report.to_json())


if __name__ == "__main__":
    main()
