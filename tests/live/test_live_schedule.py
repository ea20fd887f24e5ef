"""``paper run --live``: the scheduled loop, driven by a fake clock through a long weekend (Presidents'
Day 2019), a restart that missed a session, Alpaca's opening-order window and Ctrl-C; the
account trades on the fake Alpaca server with bars from its data API (``alpaca:SPY``)."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("alpaca")

from alpaca_fake import ET, at
from live_helpers import check_invariants, cli
from test_alpaca_feed import serve

from market_metarl.live.account import BrokerChoice, init_account
from market_metarl.live.api import run_account
from market_metarl.live.ledger import Ledger
from market_metarl.live.step import StepResult


class FakeClock:
    """A clock whose sleeps return at once and move time (and the fake server's clock) on; each
    open crossed fills the fake's opening orders at that day's bundled open."""

    def __init__(self, fake: Any, start: dt.datetime, opens: pd.Series) -> None:
        self.fake, self.t, self.opens = fake, pd.Timestamp(start).tz_convert("UTC"), opens
        self.wakes: list[dt.datetime] = []
        fake.now = start

    def now(self) -> pd.Timestamp:
        return self.t

    def advance_to(self, when: pd.Timestamp) -> None:
        for day, price in zip(self.opens.index, self.opens.to_numpy(), strict=True):
            iso = day.date().isoformat()
            opening = pd.Timestamp(at(iso, "09:30")).tz_convert("UTC")
            if self.t < opening <= when:
                self.fake.open_day(iso, {"SPY": float(price)})
        self.t = when
        self.fake.now = when.tz_convert(ET).to_pydatetime()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        self.advance_to(self.t + pd.Timedelta(seconds=seconds))
        self.wakes.append(self.t.tz_convert(ET).to_pydatetime())
        return stop.is_set()


def evening(day: str) -> dt.datetime:
    return at(day, "19:01")


def test_the_live_loop_waits_for_each_close_skips_holidays_and_catches_up_after_a_restart(
    fake_alpaca: Any, maml_run: Path, tmp_path: Path
) -> None:
    bars = serve(fake_alpaca, first="2018-10-01", last="2019-03-29")
    db = tmp_path / "live.db"
    fake_alpaca.now = at("2019-02-13", "19:30")
    init_account(db, maml_run, "alpaca:SPY", broker=BrokerChoice("alpaca"))
    clock = FakeClock(fake_alpaca, at("2019-02-14", "12:00"), bars["open"])
    stop, seen = threading.Event(), []

    def on_step(result: StepResult) -> None:
        seen.append((result.date, result.status))
        if result.date == "2019-02-19" and result.status == "stepped":
            stop.set()  # Ctrl-C during the step: it finishes, the loop returns

    # first run: Thursday noon (the opening-order window) to Tuesday after the long weekend
    done = run_account(db, live=True, clock=clock, stop=stop, on_step=on_step)
    assert done.stopped and done.steps == 3 and done.last_step == dt.date(2019, 2, 19)
    # a new account starts with the latest due session (Thu 14; Wed 13 is never stepped)
    assert seen == [
        (None, "waiting"),  # the broker refuses opening orders until 19:00 ET
        ("2019-02-14", "stepped"),
        ("2019-02-15", "stepped"),
        ("2019-02-19", "stepped"),
    ]
    # woken at 19:01 ET (Alpaca reopens opening orders at 19:00) on sessions only: no Sat,
    # Sun, nor Presidents' Day (Mon 18)
    assert clock.wakes == [evening(d) for d in ("2019-02-14", "2019-02-15", "2019-02-19")]
    # down on Wednesday; restarted Thursday 10:00 ET: Wed 20 is caught up after 19:00
    clock.advance_to(pd.Timestamp(at("2019-02-21", "10:00")).tz_convert("UTC"))
    clock.wakes, seen[:] = [], []
    once = run_account(db, live=True, clock=clock, on_step=on_step, once=True)  # cron, 10:00 ET
    assert (once.steps, seen, clock.wakes) == (0, [(None, "waiting")], [])
    seen[:] = []
    done = run_account(
        db, live=True, clock=clock, stop=threading.Event(), on_step=on_step,
        until=dt.date(2019, 2, 22),
    )  # fmt: skip
    assert not done.stopped and done.steps == 3
    assert seen == [
        (None, "waiting"),
        ("2019-02-20", "stepped"),
        ("2019-02-21", "stepped"),
        ("2019-02-22", "stepped"),
    ]
    assert clock.wakes == [evening("2019-02-21"), evening("2019-02-22")]
    assert check_invariants(db) == 6
    with Ledger.open(db) as ledger:
        steps = [r[0] for r in ledger.conn.execute("SELECT date FROM steps ORDER BY date")]
        states = dict(
            ledger.conn.execute(
                "SELECT o.date, a.state FROM alpaca_orders a "
                "JOIN orders o ON o.client_id = a.client_id"
            )
        )
        ((difference,),) = ledger.conn.execute(
            "SELECT difference FROM reconciliations ORDER BY date DESC LIMIT 1"
        )
        assert ledger.positions().get("SPY", 0.0) == fake_alpaca.positions.get("SPY", 0.0)
    assert steps == ["2019-02-14", "2019-02-15", "2019-02-19", "2019-02-20", "2019-02-21",
                     "2019-02-22"]  # fmt: skip
    assert difference < 1e-9
    # the missed session's order was not sent after its next open had passed
    assert states["2019-02-20"] in ("expired", "empty")
    taken = fake_alpaca.taken()
    assert len(taken) >= 3 and len({o["client_order_id"] for o in taken}) == len(taken)
    sessions = list(bars.index)
    for order in taken:  # every order sent before the open it fills at
        sent = dt.datetime.fromisoformat(order["submitted_at"]).astimezone(ET)
        nxt = next(d for d in sessions if d.date() > sent.date())
        assert sent < at(nxt.date().isoformat(), "09:28")
    assert {d for d, s in states.items() if s == "sent"} <= {
        "2019-02-14", "2019-02-15", "2019-02-19", "2019-02-21", "2019-02-22"
    }  # fmt: skip


def test_live_needs_a_live_feed_no_start_and_once_needs_live(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "replay.db"
    init_account(db, maml_run, "bundled:SPY")
    code, _, err = cli(capsys, "paper", "run", "--db", str(db), "--live")
    assert code == 2 and err.startswith("error: --live needs a live feed") and "bundled:SPY" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "paper", "run", "--db", str(db), "--live", "--start", "2019-01-02")
    assert code == 2 and "--start does not apply to --live" in err
    code, _, err = cli(capsys, "paper", "run", "--db", str(db), "--once")
    assert code == 2 and err.startswith("error: --once goes with --live")
    with Ledger.open(db) as ledger:
        assert ledger.last_step() is None


def test_ctrl_c_stops_the_waiting_live_loop_cleanly(
    fake_alpaca: Any, maml_run: Path, tmp_path: Path
) -> None:
    """The real clock is years after the fake's bars: the loop waits for a bar; SIGINT ends it."""
    serve(fake_alpaca, first="2018-10-01", last="2019-03-29")
    db = tmp_path / "live.db"
    fake_alpaca.now = at("2019-03-29", "19:30")
    init_account(db, maml_run, "alpaca:SPY", broker=BrokerChoice("alpaca"))
    argv = [sys.executable, "-m", "market_metarl", "paper", "run", "--live", "--db", str(db)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith(f"paper run: {db}")
        waiting = proc.stdout.readline()
        assert "waiting" in waiting and "stale" in waiting, waiting
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert (
        out.strip().splitlines()[-1] == "paper run: stopped by signal after 0 step(s); last step -"
    )
    with Ledger.open(db) as ledger:
        assert ledger.last_step() is None
