"""Multi-asset paper accounts: one book over several symbols, each adapted on its own.

The key check: a year of five bundled symbols replayed by ``paper run`` holds, position for
position, what the multi-asset rolling backtest (:func:`market_metarl.backtest.portfolio.
rolling_portfolio`, which books with the env simulator, not the paper broker) holds.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from live_helpers import K, R, check_invariants, cli, sessions

from market_metarl.backtest.portfolio import rolling_portfolio
from market_metarl.data.sources import load_bars
from market_metarl.live.account import PaperSession, init_account
from market_metarl.live.ledger import Ledger
from market_metarl.live.step import step
from market_metarl.meta.allocation import capital_split
from market_metarl.meta.run import TrainedRun
from market_metarl.types import ConfigError, DataError

SYMBOLS = ("SPY", "QQQ", "IWM", "EEM", "IBM")
FEED = ",".join(f"bundled:{s}" for s in SYMBOLS)


def rows(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def per_symbol(db: Path, sql: str, days: pd.DatetimeIndex) -> np.ndarray:
    """A ``(date, symbol, value)`` query as a ``(days, symbols)`` array (NaN where missing)."""
    frame = pd.DataFrame(rows(db, sql), columns=["date", "symbol", "value"])
    table = frame.pivot(index="date", columns="symbol", values="value")
    return table.reindex(index=[str(d.date()) for d in days], columns=list(SYMBOLS)).to_numpy()


def check_portfolio_invariants(db: Path, n: int) -> None:
    """``check_invariants`` (integrity, equity = cash + marks, each order one ``(day, symbol)`` of
    a step under its id), and a simulated account's orders: every symbol every step, one pending
    per symbol, fills with costs."""
    steps = check_invariants(db)
    ((orders, ids, keys),) = rows(
        db, "SELECT COUNT(*), COUNT(DISTINCT client_id), COUNT(DISTINCT date || symbol) FROM orders"
    )
    assert orders == ids == keys == n * steps
    assert rows(db, "SELECT COUNT(*) FROM step_symbols") == [(n * steps,)]
    ((filled,),) = rows(db, "SELECT COUNT(*) FROM orders WHERE status = 'filled'")
    assert rows(db, "SELECT COUNT(*) FROM fills") == [(filled,)]
    assert rows(db, "SELECT COUNT(*) FROM orders WHERE status = 'submitted'") == [(n,)]
    ((fill_cost,),) = rows(db, "SELECT SUM(cost) FROM fills")
    assert fill_cost > 0


def test_a_year_of_five_symbols_equals_the_multi_asset_rolling_backtest(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = sessions("2019-01-02", "2019-12-31")
    db = tmp_path / "multi.db"
    code, out, err = cli(
        capsys, "paper", "init", "--run", str(maml_run), "--feed", FEED, "--db", str(db),
        "--allocation", "inverse_vol", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["symbol"] == ",".join(SYMBOLS)
    code, out, err = cli(
        capsys, "paper", "run", "--db", str(db), "--start", str(days[0].date()),
        "--asof", str(days[-1].date()),
    )  # fmt: skip
    assert code == 0, err
    assert f"done after {len(days)} step(s)" in out
    check_portfolio_invariants(db, len(SYMBOLS))

    # the reference: decisions on every day but the last, executed through the last
    bars = {s: load_bars(f"bundled:{s}").loc[: days[-1]] for s in SYMBOLS}
    ref = rolling_portfolio(
        TrainedRun.open(maml_run), bars, days[0].date(), len(days) - 1, K, R, "inverse_vol", 60
    )
    decided = days[:-1]
    assert ref.dates.equals(decided) and ref.marks.equals(days)
    sql = "SELECT date, symbol, {} FROM step_symbols"
    sleeves = per_symbol(db, sql.format("adapted_target"), decided)
    np.testing.assert_allclose(sleeves, ref.sleeves, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(per_symbol(db, sql.format("allocation"), decided), ref.split)
    targets = per_symbol(db, sql.format("target"), decided)
    np.testing.assert_allclose(targets, ref.weights, rtol=0, atol=1e-12)
    orders = per_symbol(db, "SELECT date, symbol, target_weight FROM orders", decided)
    np.testing.assert_array_equal(orders, targets)
    # the policy moves, and the split moves with the trailing volatility
    assert np.std(ref.sleeves, axis=0).min() > 0.01
    assert np.ptp(ref.split, axis=0).min() > 0.01 and not np.allclose(ref.split, 0.2)

    # position for position: shares of every symbol at every close, cash and equity
    shares = per_symbol(db, "SELECT date, symbol, shares FROM marks", days)
    np.testing.assert_allclose(shares, ref.shares, rtol=1e-10, atol=1e-9)
    with Ledger.open(db) as ledger:
        marks = ledger.equity_rows()
        now = ledger.positions()
    assert [m.date for m in marks] == [str(d.date()) for d in days]
    np.testing.assert_allclose([m.cash for m in marks], ref.cash, rtol=1e-10, atol=1e-6)
    np.testing.assert_allclose([m.equity for m in marks], ref.equity, rtol=1e-11)
    assert now == pytest.approx(dict(zip(SYMBOLS, ref.shares[-1], strict=True)), rel=1e-10)
    assert (np.abs(ref.shares[1:]) > 0).all()  # every symbol is held

    # one adaptation per block, each hashing every symbol's adapted state
    adaptations = rows(db, "SELECT date, support_end, adapt_days FROM adaptations ORDER BY date")
    assert len(adaptations) == -(-len(days) // R)
    assert adaptations[0] == (str(days[0].date()), str(days[0].date()), K)

    # status: every position, the account against its shadow books
    code, out, err = cli(capsys, "paper", "status", "--db", str(db), "--json")
    assert code == 0, err
    status = json.loads(out)
    assert [s["symbol"] for s in status["symbols"]] == list(SYMBOLS)
    assert status["allocation"] == "inverse_vol"
    assert set(status["positions"]) == set(SYMBOLS)
    assert sum(status["positions"].values()) == pytest.approx(
        1.0 - marks[-1].cash / marks[-1].equity, rel=1e-9
    )
    books = status["shadow_books"]
    assert set(books) == {"pooled", "buy_and_hold"}
    assert books["buy_and_hold"]["equity"] == marks[-1].benchmark_equity
    pooled = marks[-1].pooled_equity
    assert pooled is not None and books["pooled"]["equity"] == pooled
    assert books["pooled"]["excess_return"] == pytest.approx(
        (marks[-1].equity - pooled) / status["initial_cash"], abs=1e-12
    )
    assert [d["symbol"] for d in status["last_decisions"]] == list(SYMBOLS)
    code, out, err = cli(capsys, "paper", "status", "--db", str(db))
    assert code == 0 and "position IBM" in out and "shadow pooled" in out, err


def test_equal_split_python_api_and_buy_and_hold_shadow(maml_run: Path, tmp_path: Path) -> None:
    import market_metarl as mm

    days = sessions("2019-03-01", "2019-03-15")
    db = tmp_path / "equal.db"
    feeds = [f"bundled:{s}" for s in SYMBOLS[:3]]
    account = mm.PaperAccount.init(db, maml_run, feeds, allocation="equal")
    # two sessions: the second starts inside a block (it adapts again and replays the block)
    assert account.run(until=days[6].date(), start=days[0].date()).steps == 7
    assert account.run(until=days[-1].date()).steps == len(days) - 7
    bars = {s: load_bars(f"bundled:{s}").loc[: days[-1]] for s in SYMBOLS[:3]}
    ref = rolling_portfolio(TrainedRun.open(maml_run), bars, days[0].date(), len(days) - 1, K, R)
    sql = "SELECT date, symbol, target FROM step_symbols WHERE symbol IN ('SPY', 'QQQ', 'IWM')"
    targets = per_symbol(db, sql, days[:-1])[:, :3]
    np.testing.assert_allclose(targets, ref.weights, rtol=0, atol=1e-12)
    with Ledger.open(db) as ledger:
        splits = {r[0] for r in ledger.conn.execute("SELECT allocation FROM step_symbols")}
        books = ledger.equity_rows()
        bh = ledger.conn.execute(
            "SELECT symbol, shares FROM shadow_positions WHERE book = 'buy_and_hold'"
        ).fetchall()
        bh_cash = ledger.book("buy_and_hold").cash
    assert splits == {1 / 3}
    # buy-and-hold holds a third of its equity in each symbol (rebalanced at each open)
    closes = {s: float(load_bars(f"bundled:{s}").loc[days[-1], "close"]) for s in SYMBOLS[:3]}
    value = {s: q * closes[s] for s, q in bh}
    assert books[-1].benchmark_equity == pytest.approx(bh_cash + sum(value.values()), rel=1e-12)
    weights = np.array(list(value.values())) / books[-1].benchmark_equity
    assert np.allclose(weights, 1 / 3, atol=0.02) and abs(bh_cash) < 0.01 * books[-1].equity
    assert books[0].benchmark_equity == books[0].equity == 100_000.0


def test_a_skipped_session_and_bad_feeds_are_refused(maml_run: Path, tmp_path: Path) -> None:
    db = tmp_path / "multi.db"
    with pytest.raises(DataError, match="twice"):
        init_account(db, maml_run, "bundled:SPY,bundled:SPY")
    with pytest.raises(ConfigError, match="allocation"):
        init_account(db, maml_run, FEED, allocation="momentum")
    assert not db.exists()
    init_account(db, maml_run, "bundled:SPY,bundled:QQQ")
    with PaperSession.open(db) as session:
        assert session.symbols == ("SPY", "QQQ")
        assert step(session, pd.Timestamp("2019-03-01").date()).status == "stepped"
        with Ledger.open(db) as ledger:
            before = ledger.dump()
        with pytest.raises(DataError, match="2019-03-04 was not stepped"):
            step(session, pd.Timestamp("2019-03-05").date())
        with Ledger.open(db) as ledger:
            assert ledger.dump() == before
    with pytest.raises(DataError, match="trades SPY,IWM"):
        PaperSession.open(db, feed_spec="bundled:SPY,bundled:IWM")


def test_inverse_vol_split_is_causal_and_known() -> None:
    closes = np.exp(np.cumsum(np.array([[0.01, 0.02], [-0.01, -0.02], [0.01, 0.02]]), axis=0))
    closes = np.vstack([[1.0, 1.0], closes])
    split = capital_split("inverse_vol", closes, 3)
    # sigma of asset 2 is twice asset 1's: it gets half the weight
    np.testing.assert_allclose(split, [2 / 3, 1 / 3], rtol=1e-12)
    # a later close never changes an earlier day's split
    longer = np.vstack([closes, [[5.0, 0.1]]])
    np.testing.assert_array_equal(capital_split("inverse_vol", longer[:-1], 3), split)
    with pytest.raises(DataError, match="needs 4 closes"):
        capital_split("inverse_vol", closes[:3], 3)
    np.testing.assert_array_equal(capital_split("equal", closes, 3), [0.5, 0.5])
