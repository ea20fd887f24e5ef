"""The daily step of an account on Alpaca (``paper init --broker alpaca``), against the fake Alpaca
server: trading and reconciling, the OPG window, a position changed behind the ledger's back, a
refused order, and a SIGKILL between the ledger's write and the POST."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("alpaca")

from alpaca_fake import at
from live_helpers import check_invariants, cli

from market_metarl.data.sources import load_bars
from market_metarl.live.account import BrokerChoice, PaperSession, init_account
from market_metarl.live.alpaca_client import FAULT_ENV
from market_metarl.live.ledger import Ledger
from market_metarl.live.step import StepResult, step

DAYS = ("2019-03-01", "2019-03-04", "2019-03-05")


def open_of(symbol: str, day: str) -> float:
    bars = load_bars(f"bundled:{symbol}")
    return float(bars["open"].to_numpy()[bars.index.get_loc(day)])


def spy_price(day: str, column: str = "open") -> float:
    bars = load_bars("bundled:SPY")
    return float(bars[column].to_numpy()[bars.index.get_loc(day)])


@pytest.fixture
def db(maml_run: Path, tmp_path: Path, fake_alpaca: Any) -> Path:
    fake_alpaca.evening(DAYS[0])
    path = tmp_path / "alpaca.db"
    init_account(path, maml_run, "bundled:SPY", broker=BrokerChoice("alpaca"))
    return path


def step_on(db: Path, day: str) -> StepResult:
    with PaperSession.open(db) as session:
        session.broker.wait = 0.01  # type: ignore[attr-defined]
        return step(session, dt.date.fromisoformat(day))


def next_day(fake: Any, day: str) -> None:
    """The fake's open of ``day`` (OPG orders fill at the bundled open), then its evening."""
    fake.open_day(day, {"SPY": spy_price(day)})
    fake.evening(day)


def sent_orders(db: Path) -> list[tuple[Any, ...]]:
    with Ledger.open(db) as ledger:
        return ledger.conn.execute(
            "SELECT client_id, state, qty, alpaca_id FROM alpaca_orders ORDER BY client_id"
        ).fetchall()


def test_an_alpaca_account_steps_trades_at_the_open_and_reconciles(
    db: Path, fake_alpaca: Any
) -> None:
    for i, day in enumerate(DAYS):
        if i:
            next_day(fake_alpaca, day)
        assert step_on(db, day).status == "stepped"
        with Ledger.open(db) as ledger:
            assert ledger.positions().get("SPY", 0.0) == fake_alpaca.positions.get("SPY", 0.0)
            assert ledger.cash() == pytest.approx(fake_alpaca.cash, abs=1e-6)
            rec = ledger.conn.execute("SELECT date, difference FROM reconciliations").fetchall()
        assert rec[-1][0] == day and rec[-1][1] < 1e-9
    check_invariants(db)
    orders = sent_orders(db)
    assert [o[1] for o in orders] in (["sent"] * 3, ["sent", "sent", "empty"])
    taken = {o["client_order_id"]: o for o in fake_alpaca.taken()}
    for cid, state, qty, alpaca_id in orders:
        if state == "sent":
            assert taken[cid]["id"] == alpaca_id and float(taken[cid]["qty"]) == abs(qty)
    with Ledger.open(db) as ledger:
        (fill,) = ledger.fills("2019-03-04")[:1]
    assert (fill["date"], fill["price"], fill["cost"]) == (
        "2019-03-04",
        spy_price("2019-03-04"),
        0.0,
    )


def test_a_step_in_the_opg_window_sends_nothing_and_says_when_to_run(
    db: Path, fake_alpaca: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert step_on(db, DAYS[0]).status == "stepped"
    fake_alpaca.open_day(DAYS[1], {"SPY": spy_price(DAYS[1])})
    fake_alpaca.now = at(DAYS[1], "16:30")
    with Ledger.open(db) as ledger:
        before = ledger.dump()
    posts = fake_alpaca.posts
    code, out, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", DAYS[1])
    assert code == 0 and not err
    (line,) = out.strip().splitlines()
    assert "waiting" in line and "16:30 ET" in line and "after 19:00 ET (00:00 UTC)" in line
    assert fake_alpaca.posts == posts
    with Ledger.open(db) as ledger:
        assert ledger.dump() == before
    fake_alpaca.evening(DAYS[1])  # after 19:00 ET the same command steps
    assert cli(capsys, "paper", "step", "--db", str(db), "--asof", DAYS[1])[0] == 0
    assert step_on(db, DAYS[1]).status == "noop"


def test_a_position_changed_behind_the_ledger_trips_the_kill_switch(
    db: Path, fake_alpaca: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert step_on(db, DAYS[0]).status == "stepped"
    next_day(fake_alpaca, DAYS[1])
    fake_alpaca.positions["SPY"] = fake_alpaca.positions.get("SPY", 0.0) + 7  # someone traded
    posts = fake_alpaca.posts
    result = step_on(db, DAYS[1])
    assert (result.status, result.policy, result.target) == ("stepped", "halted", None)
    assert "reconcile_kill" in result.events
    assert fake_alpaca.posts == posts  # nothing sent, not even a flattening order
    with Ledger.open(db) as ledger:
        assert ledger.guard_state() == (True, False)
        ((ledger_shares, broker_shares, difference),) = ledger.conn.execute(
            "SELECT ledger_shares, broker_shares, difference FROM reconciliations WHERE date = ?",
            (DAYS[1],),
        ).fetchall()
    mine, theirs = json.loads(ledger_shares), json.loads(broker_shares)
    assert theirs["SPY"] - mine.get("SPY", 0.0) == 7
    close = spy_price(DAYS[1], "close")  # valued at the day's close
    assert result.equity is not None
    assert difference == pytest.approx(7 * close / result.equity, rel=1e-12)
    code, out, _ = cli(capsys, "paper", "status", "--db", str(db))
    assert code == 0 and "KILLED" in out
    (line,) = [x for x in out.splitlines() if x.startswith("reconciliation")]
    assert f"{DAYS[1]} DIFFER" in line and f"broker {json.dumps(theirs)}" in line


def test_a_refused_order_is_one_error_line_and_a_consistent_ledger(
    db: Path, fake_alpaca: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_alpaca.faults = ["reject-403"]
    code, _, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", DAYS[0])
    if not fake_alpaca.posts:
        pytest.skip("the first day's target rounds to no whole share")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert (
        line.startswith("error: Alpaca refused order mmrl-") and "insufficient buying power" in line
    )
    assert fake_alpaca.taken() == []
    assert check_invariants(db) == 1
    ((_, state, _, _),) = sent_orders(db)
    assert state == "rejected"
    with Ledger.open(db) as ledger:
        assert ledger.pending_orders() == []


def test_init_refuses_bad_broker_options_with_one_error_line(
    maml_run: Path,
    tmp_path: Path,
    fake_alpaca: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["paper", "init", "--run", str(maml_run), "--feed", "bundled:SPY", "--db"]
    db = str(tmp_path / "a.db")

    def refused(*extra: str) -> str:
        code, _, err = cli(capsys, *base, db, "--broker", "alpaca", *extra)
        assert code == 2 and not Path(db).exists(), err
        (line,) = err.strip().splitlines()
        assert line.startswith("error: ")
        return line

    assert "--i-know-this-is-real-money" in refused("--alpaca-live")
    assert "--cash does not apply" in refused("--cash", "5000")
    fake_alpaca.positions["SPY"], fake_alpaca.last_price["SPY"] = 3.0, 280.0
    assert "holds {'SPY': '3'}" in refused()
    fake_alpaca.positions.clear()
    with monkeypatch.context() as m:
        m.setenv("APCA_API_BASE_URL", "https://api.alpaca.markets")
        assert "live endpoint" in refused()
    with monkeypatch.context() as m:
        m.delenv("APCA_API_SECRET_KEY")
        assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY" in refused()
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "alpaca.trading.client", None)  # alpaca-py not installed
        assert "pip install 'market-metarl[alpaca]'" in refused()
    assert fake_alpaca.posts == 0
    code, _, err = cli(
        capsys, *base, db, "--broker", "alpaca", "--alpaca-live", "--i-know-this-is-real-money"
    )
    assert code == 0, err
    with Ledger.open(db) as ledger:
        assert ledger.conn.execute("SELECT kind, paper FROM broker_account").fetchone() == (
            "alpaca",
            0,
        )


def test_sigkill_between_the_ledger_write_and_the_post_then_a_rerun_sends_one_order(
    db: Path, fake_alpaca: Any
) -> None:
    argv = [sys.executable, "-m", "market_metarl", "paper", "step", "--db", str(db)]
    argv += ["--asof", DAYS[0]]
    env = {**os.environ, FAULT_ENV: "before-post"}
    killed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ((_, state, _, _),) = sent_orders(db)
    if state == "empty":
        pytest.skip("the first day's target rounds to no whole share")
    assert state == "intent" and fake_alpaca.taken() == []  # written ahead and committed
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "noop" in rerun.stdout  # the step itself was done; only the order was left to send
    (taken,) = fake_alpaca.taken()
    ((cid, state, _, alpaca_id),) = sent_orders(db)
    assert (state, alpaca_id, taken["client_order_id"]) == ("sent", taken["id"], cid)
    assert fake_alpaca.posts == 1
    check_invariants(db)


class Died(BaseException):
    """The process dying at a fault point (in-process: nothing after it runs)."""


def test_a_death_after_the_post_before_its_answer_is_recorded_sends_nothing_again(
    db: Path, fake_alpaca: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(name: str) -> None:
        if name == "after-post":
            raise Died

    with monkeypatch.context() as m:
        m.setattr("market_metarl.live.alpaca_client.fault_point", die)
        with pytest.raises(Died):
            step_on(db, DAYS[0])
    ((_, state, _, _),) = sent_orders(db)
    if state == "empty":
        pytest.skip("the first day's target rounds to no whole share")
    assert state == "intent" and len(fake_alpaca.taken()) == 1  # taken, not known as sent
    assert step_on(db, DAYS[0]).status == "noop"
    (taken,) = fake_alpaca.taken()
    assert sent_orders(db)[0][1:4:2] == ("sent", taken["id"])
    assert fake_alpaca.posts == 1
    check_invariants(db)


def test_a_step_without_keys_or_alpaca_py_is_one_error_line_and_status_still_reads(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["paper", "step", "--db", str(db), "--asof", DAYS[0]]
    with monkeypatch.context() as m:
        m.delenv("APCA_API_KEY_ID")
        code, _, err = cli(capsys, *argv)
        assert code == 2 and err.startswith("error: --broker alpaca needs the account's API keys")
        assert len(err.strip().splitlines()) == 1
        code, out, _ = cli(capsys, "paper", "status", "--db", str(db))  # the ledger alone
        assert code == 0 and "alpaca paper account PA3FAKE0TEST" in out
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "alpaca.trading.client", None)
        code, _, err = cli(capsys, *argv)
        assert code == 2 and "pip install 'market-metarl[alpaca]'" in err
    with Ledger.open(db) as ledger:
        assert ledger.last_step() is None


def test_a_multi_asset_account_trades_every_symbol_on_alpaca_and_reconciles(
    maml_run: Path, tmp_path: Path, fake_alpaca: Any
) -> None:
    symbols = ("SPY", "QQQ", "IWM")
    fake_alpaca.evening(DAYS[0])
    db = tmp_path / "multi-alpaca.db"
    feed = ",".join(f"bundled:{s}" for s in symbols)
    init_account(db, maml_run, feed, broker=BrokerChoice("alpaca"))
    for i, day in enumerate(DAYS):
        if i:
            opens = {s: open_of(s, day) for s in symbols}
            fake_alpaca.open_day(day, opens)
            fake_alpaca.evening(day)
        result = step_on(db, day)
        assert result.status == "stepped" and result.targets is not None
        assert set(result.targets) == set(symbols)
        with Ledger.open(db) as ledger:
            mine = {s: q for s, q in ledger.positions().items() if q}
            assert mine == {s: q for s, q in fake_alpaca.positions.items() if q}
            assert ledger.cash() == pytest.approx(fake_alpaca.cash, abs=1e-6)
            rec = ledger.conn.execute("SELECT date, difference FROM reconciliations").fetchall()
        assert rec[-1][0] == day and rec[-1][1] < 1e-9
    assert len([q for q in fake_alpaca.positions.values() if q]) >= 2  # several symbols held
    taken = fake_alpaca.taken()
    ids = [o["client_order_id"] for o in taken]
    assert len(ids) == len(set(ids))
    with Ledger.open(db) as ledger:
        orders = ledger.conn.execute("SELECT client_id, date, symbol FROM orders").fetchall()
    assert len(orders) == len(symbols) * len(DAYS)
    assert {cid for cid, _, _ in orders} >= set(ids)
    for cid, day, symbol in orders:
        assert cid.endswith(f"-{day.replace('-', '')}-{symbol}")
    assert check_invariants(db) == len(DAYS)  # the multi-asset ledger's invariants


def test_a_broker_outage_on_a_read_is_one_error_line_and_a_rerun_trades_once(
    db: Path, fake_alpaca: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_alpaca.inject(0, 1.0)  # every request fails: 429, 500, 503, 504 in turn
    code, out, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", DAYS[0])
    assert code == 1 and not out
    (line,) = err.strip().splitlines()
    assert line.startswith("error: the broker's API failed (HTTP ") and "run the same" in line
    assert fake_alpaca.taken() == []
    fake_alpaca.chaos = None  # the broker is back: the same command steps, once
    assert cli(capsys, "paper", "step", "--db", str(db), "--asof", DAYS[0])[0] == 0
    assert check_invariants(db) == 1  # one step
    assert len(fake_alpaca.taken()) <= 1  # one order, or none if the target rounds to 0 shares
