"""Helpers of the paper-trading tests: running the CLI in-process, checking ledger invariants."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.cli import main
from market_metarl.data.sources import load_bars
from market_metarl.live.alpaca_schema import broker_kind
from market_metarl.live.ledger import Ledger
from market_metarl.live.portfolio_schema import account_symbols
from market_metarl.live.step_common import client_id
from market_metarl.meta.protocol import rolling_targets
from market_metarl.meta.run import TrainedRun


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``market-metarl ARGV`` in-process: ``(exit code, stdout, stderr)``."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_invariants(db: Path) -> int:
    """Integrity and accounting invariants of a ledger of one symbol or several; its steps.

    One symbol is the N = 1 case of an account over N symbols: every order is one of the
    ``(day, symbol)`` of a step, under its deterministic client id, referenced once by its step
    (a one-symbol step's ``steps.client_id``; a multi-asset step's ``step_symbols`` rows, N per
    step); at most one order pending per symbol; on an Alpaca account every order has one
    write-ahead row whose state agrees with the order's (see :func:`check_broker_rows`).
    """
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # equity = cash + positions * price, at every close
        rows = conn.execute(
            "SELECT e.date, e.cash, e.equity, SUM(m.shares * m.price) FROM equity e "
            "JOIN marks m ON m.date = e.date GROUP BY e.date"
        ).fetchall()
        for day, cash, equity, value in rows:
            assert equity == pytest.approx(cash + value, rel=1e-12, abs=1e-9), day
        steps = conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        check_orders(conn, steps)
        # fills: one per filled order, of its symbol; at most one pending order per symbol
        filled = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'filled'").fetchone()[0]
        fills = conn.execute(
            "SELECT COUNT(*) FROM fills f JOIN orders o ON o.client_id = f.client_id "
            "WHERE o.status = 'filled' AND o.symbol = f.symbol"
        ).fetchone()[0]
        assert filled == fills == conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        pending = conn.execute(
            "SELECT symbol, COUNT(*) FROM orders WHERE status = 'submitted' GROUP BY symbol"
        ).fetchall()
        assert all(n <= 1 for _, n in pending), pending
        # the book now is the last close's book
        last = conn.execute("SELECT cash FROM equity ORDER BY date DESC LIMIT 1").fetchone()
        cash = conn.execute("SELECT amount FROM cash").fetchone()[0]
        if last is not None:
            assert cash == last[0]
        stepped = conn.execute("SELECT COUNT(*) FROM equity WHERE stepped = 1").fetchone()[0]
        assert stepped == steps
        if broker_kind(conn) == "alpaca":
            check_broker_rows(conn)
        return int(steps)
    finally:
        conn.close()


def check_orders(conn: sqlite3.Connection, steps: int) -> None:
    """Each order is one ``(day, symbol)`` of a step, under its id, referenced once by the step."""
    symbols = [s for s, _ in account_symbols(conn)]
    (account,) = conn.execute("SELECT account_id FROM account").fetchone()
    orders = conn.execute("SELECT client_id, date, symbol FROM orders").fetchall()
    assert len({(d, s) for _, d, s in orders}) == len({c for c, _, _ in orders}) == len(orders)
    for cid, day, symbol in orders:
        assert symbol in symbols, cid
        assert cid == client_id(account, dt.date.fromisoformat(day), symbol), cid
    # who refers to each order: its step (one symbol) or its step's symbol row (several)
    refs = conn.execute(
        "SELECT s.client_id, o.date = s.date FROM steps s JOIN orders o "
        "ON o.client_id = s.client_id UNION ALL "
        "SELECT d.client_id, o.date = d.date AND o.symbol = d.symbol FROM step_symbols d "
        "JOIN orders o ON o.client_id = d.client_id"
    ).fetchall()
    assert all(same for _, same in refs), refs
    assert Counter(c for c, _ in refs) == Counter(c for c, _, _ in orders)
    rows = conn.execute("SELECT COUNT(*) FROM step_symbols").fetchone()[0]
    if len(symbols) > 1:  # a multi-asset step: one row per symbol, the order ids there
        assert rows == len(symbols) * steps
        assert conn.execute("SELECT COUNT(client_id) FROM steps").fetchone()[0] == 0
    else:
        assert rows == 0


def check_broker_rows(conn: sqlite3.Connection) -> None:
    """An Alpaca ledger: one write-ahead row per order, of its symbol, in a state its status fits.

    ``empty`` (no whole share to trade), ``rejected`` and ``expired`` orders are cancelled; a
    filled order was sent (Alpaca's id recorded); an order only written ahead is still pending.
    """
    rows = conn.execute(
        "SELECT o.client_id, o.status, a.state, a.qty, a.alpaca_id FROM orders o "
        "LEFT JOIN alpaca_orders a ON a.client_id = o.client_id AND a.symbol = o.symbol"
    ).fetchall()
    assert conn.execute("SELECT COUNT(*) FROM alpaca_orders").fetchone()[0] == len(rows)
    for cid, status, state, qty, alpaca_id in rows:
        assert state is not None, f"{cid}: no write-ahead row of its symbol"
        assert (state == "empty") == (qty == 0), cid
        if state in ("empty", "rejected", "expired"):
            assert status == "cancelled", (cid, state, status)
        if state == "sent" or status == "filled":
            assert state == "sent" and alpaca_id is not None, (cid, state, status)
        if state == "intent":
            assert status == "submitted", (cid, state, status)


K, R = 10, 5


def rolling_reference(run: Path, days: pd.DatetimeIndex, strategy: str = "adapted") -> np.ndarray:
    """What the rolling backtest holds: ``rolling_targets`` over the full series."""
    trained = TrainedRun.open(run)
    view = trained.market_view(load_bars("bundled:SPY"))
    start = view.row(days[0])
    assert view.dates[start] == days[0]
    agent = trained.agent(strategy)
    return rolling_targets(agent, view, start, start + len(days), K, R)[:, 0]


def sessions(start: str, end: str) -> pd.DatetimeIndex:
    bars = load_bars("bundled:SPY")
    return pd.DatetimeIndex(bars.loc[start:end].index)


def ledger_targets(db: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with Ledger.open(db) as ledger:
        rows = ledger.conn.execute(
            "SELECT s.target, o.target_weight, s.pooled_target FROM steps s "
            "JOIN orders o ON o.client_id = s.client_id ORDER BY s.date"
        ).fetchall()
    arr = np.array(rows, dtype=float)
    return arr[:, 0], arr[:, 1], arr[:, 2]
