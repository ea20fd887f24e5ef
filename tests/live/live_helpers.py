"""Helpers of the paper-trading tests: running the CLI in-process, checking ledger invariants."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.cli import main
from market_metarl.data.sources import load_bars
from market_metarl.live.ledger import Ledger
from market_metarl.meta.protocol import rolling_targets
from market_metarl.meta.run import TrainedRun


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``market-metarl ARGV`` in-process: ``(exit code, stdout, stderr)``."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_invariants(db: Path) -> int:
    """Integrity and accounting invariants of a ledger; returns the number of steps."""
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
        # one order per client id, per (date, symbol), and per step that traded
        steps = conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        orders = conn.execute("SELECT COUNT(*), COUNT(DISTINCT client_id) FROM orders").fetchone()
        assert orders[0] == orders[1]
        traded = conn.execute("SELECT COUNT(*) FROM steps WHERE client_id IS NOT NULL").fetchone()
        assert traded[0] == orders[0]
        # fills: one per filled order, none for a pending one; at most one pending order
        filled = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'filled'").fetchone()[0]
        fills = conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
        pending = conn.execute("SELECT COUNT(*) FROM orders WHERE status = 'submitted'").fetchone()
        assert filled == fills and pending[0] <= 1
        # the book now is the last close's book
        last = conn.execute("SELECT cash FROM equity ORDER BY date DESC LIMIT 1").fetchone()
        cash = conn.execute("SELECT amount FROM cash").fetchone()[0]
        if last is not None:
            assert cash == last[0]
        stepped = conn.execute("SELECT COUNT(*) FROM equity WHERE stepped = 1").fetchone()[0]
        assert stepped == steps
        return int(steps)
    finally:
        conn.close()


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
