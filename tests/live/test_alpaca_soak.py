"""The Alpaca soak (``alpaca_soak.py``): a simulated month on the fake Alpaca server with 10 seeded
SIGKILLs of ``paper step`` and seeded 5xx/429 answers; no order is sent twice and the ledger and
the broker agree at the end. ``benchmarks/alpaca_soak.py`` runs the same and prints the counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from alpaca_soak import Runner, session_days, soak
from live_helpers import check_invariants

from market_metarl.data.sources import load_bars
from market_metarl.live.account import BrokerChoice, init_account
from market_metarl.live.alpaca_client import RETRY_WAIT_ENV

pytestmark = pytest.mark.faults

SYMBOLS = ["SPY"]  # check_invariants counts one order per step; the benchmark runs five
SESSIONS, KILLS, SEED, ERROR_RATE = 21, 10, 2024, 0.05


def opens(symbols: list[str], days: list[str]) -> dict[str, dict[str, float]]:
    bars = {s: load_bars(f"bundled:{s}") for s in symbols}
    return {
        d: {s: float(bars[s]["open"].to_numpy()[bars[s].index.get_loc(d)]) for s in symbols}
        for d in days
    }


def test_a_month_of_kills_and_broker_errors_sends_no_order_twice_and_reconciles(
    fake_alpaca: Any, maml_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = session_days("2019-03-01", SESSIONS + 1)
    db = tmp_path / "soak.db"
    fake_alpaca.evening(days[0])
    init_account(
        db, maml_run, ",".join(f"bundled:{s}" for s in SYMBOLS), broker=BrokerChoice("alpaca")
    )
    monkeypatch.setenv(RETRY_WAIT_ENV, "0.01")  # alpaca-py waits 3 s before retrying a 429
    fake_alpaca.inject(SEED, ERROR_RATE)
    runner = Runner(tmp_path, SYMBOLS)  # forked children inherit the fake's URL and keys
    try:
        report = soak(db, fake_alpaca, runner, days[:-1], opens(SYMBOLS, days), KILLS, SEED)
    finally:
        runner.close()
    print("\n".join(report.lines()))
    assert report.sessions == SESSIONS and report.kills == KILLS
    assert check_invariants(db) == SESSIONS  # every session stepped once
    assert {"429", "500", "503", "504"} <= set(report.injected)
    assert report.orders_sent >= 5 and report.posts >= report.orders_sent
    assert report.duplicates == 0
    assert report.reconciliations >= SESSIONS and report.differences == 0
