"""The Alpaca soak (``alpaca_soak.py``): a five-symbol account for a simulated month on the fake
Alpaca server with 10 seeded SIGKILLs of ``paper step`` and seeded 5xx/429 answers; no order is
sent twice or lost, the ledger's invariants hold, and the ledger and the broker agree at the end.
``benchmarks/alpaca_soak.py`` runs the same and prints the same counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from alpaca_soak import Runner, open_prices, session_days, soak

from market_metarl.live.account import BrokerChoice, init_account
from market_metarl.live.alpaca_client import RETRY_WAIT_ENV

pytestmark = pytest.mark.faults

SYMBOLS = ["SPY", "QQQ", "IWM", "EEM", "IBM"]  # one account over five bundled symbols
SESSIONS, KILLS, SEED, ERROR_RATE = 21, 10, 2024, 0.05


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
        report = soak(db, fake_alpaca, runner, days[:-1], open_prices(SYMBOLS, days), KILLS, SEED)
    finally:
        runner.close()
    print("\n".join(report.lines()))
    assert report.sessions == SESSIONS and report.kills == KILLS
    assert report.steps == SESSIONS  # the ledger's invariants hold; every session stepped once
    assert {"429", "500", "503", "504"} <= set(report.injected)
    assert report.orders_sent >= 5 and report.posts >= report.orders_sent
    assert {o["symbol"] for o in fake_alpaca.taken()} == set(SYMBOLS)
    assert report.duplicates == 0 and report.missing == 0
    assert report.reconciliations >= SESSIONS and report.differences == 0
