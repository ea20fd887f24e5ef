"""Feeds: the exchange calendar, the replay feed's checks, and yfinance with a fake download."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from live_helpers import check_invariants, cli

from market_metarl.live.calendar import get_calendar
from market_metarl.live.feeds import (
    ReplayFeed,
    StaleDataError,
    YFinanceFeed,
    open_feed,
    require_sessions,
)
from market_metarl.types import DataError

NOW = pd.Timestamp("2024-06-03 23:00", tz="UTC")
"""Monday 3 June 2024, after the close (19:00 in New York)."""


def test_xnys_calendar_knows_holidays_and_closes() -> None:
    cal = get_calendar("XNYS")
    days = cal.sessions("2001-09-07", "2001-09-18")  # closed after 9/11
    assert [d.day for d in days] == [7, 10, 17, 18]
    assert not cal.is_session("2012-10-29")  # hurricane Sandy
    assert cal.session_close("2019-11-29") == pd.Timestamp("2019-11-29 18:00", tz="UTC")  # early
    assert cal.last_closed_session(pd.Timestamp("2024-06-03 19:00", tz="UTC")).date() == (
        dt.date(2024, 5, 31)
    )
    assert cal.last_closed_session(NOW).date() == dt.date(2024, 6, 3)
    with pytest.raises(DataError, match="unknown trading calendar"):
        get_calendar("XLON")


def test_bundled_spy_has_every_session_of_its_years() -> None:
    feed = ReplayFeed("bundled:SPY")
    bars = feed.bars(dt.date(2021, 3, 31))
    require_sessions(bars, bars.index[0], feed.calendar, feed.spec)


def test_replay_reveals_bars_only_up_to_asof() -> None:
    feed = open_feed("bundled:SPY")
    assert isinstance(feed, ReplayFeed) and feed.symbol == "SPY"
    bars = feed.bars(dt.date(2019, 6, 3))
    assert bars.index[-1] == pd.Timestamp("2019-06-03")
    assert feed.default_asof(dt.date(2019, 5, 31), NOW) == dt.date(2019, 6, 3)
    assert feed.default_asof(dt.date(2021, 3, 31), NOW) is None


def test_replay_of_synthetic_data_uses_weekdays() -> None:
    feed = ReplayFeed("synthetic:gbm?seed=1&days=300")
    assert feed.calendar.name == "weekdays"
    bars = feed.bars(feed.end)
    require_sessions(bars, bars.index[0], feed.calendar, feed.spec)


def test_gap_and_extra_days_are_named() -> None:
    cal = get_calendar("XNYS")
    bars = ReplayFeed("bundled:SPY").bars(dt.date(2019, 6, 28)).loc["2019-05-01":]
    with pytest.raises(DataError, match="2019-05-14"):
        require_sessions(bars.drop(pd.Timestamp("2019-05-14")), "2019-05-01", cal, "x")
    extra = bars.copy()
    extra.loc[pd.Timestamp("2019-06-01")] = extra.iloc[-1]  # a Saturday
    with pytest.raises(DataError, match="2019-06-01, when XNYS was closed"):
        require_sessions(extra.sort_index(), "2019-05-01", cal, "x")


class FakeDownload:
    """Stands in for ``yfinance.download``: serves ``frame`` (yfinance's shape), or nothing."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.calls, self.offline = frame, 0, False

    def __call__(self, tickers: Any, start: Any = None, end: Any = None, **kw: Any) -> pd.DataFrame:
        self.calls += 1
        if self.offline:
            return pd.DataFrame()  # what yfinance returns without a network
        out = self.frame
        if start:
            out = out[out.index >= pd.Timestamp(start)]
        return pd.concat({"SPY": out}, axis=1)


def yahoo_history(last: str) -> pd.DataFrame:
    days = get_calendar("XNYS").sessions("2023-06-01", last)
    rng = np.random.default_rng(7)
    close = 420 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    open_ = close * np.exp(rng.normal(0, 0.003, len(days)))
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.004,
            "Low": np.minimum(open_, close) * 0.996,
            "Close": close,
            "Volume": np.full(len(days), 5e7),
        },
        index=pd.DatetimeIndex(days, name="Date"),
    )


@pytest.fixture
def fake_yf(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> FakeDownload:
    import yfinance

    fake = FakeDownload(yahoo_history("2024-06-03"))
    monkeypatch.setattr(yfinance, "download", fake)
    return fake


def test_yfinance_feed_serves_fresh_bars(fake_yf: FakeDownload) -> None:
    feed = open_feed("yfinance:SPY")
    assert isinstance(feed, YFinanceFeed) and feed.symbol == "SPY"
    bars = feed.bars(dt.date(2024, 6, 3), NOW)
    assert bars.index[-1] == pd.Timestamp("2024-06-03") and fake_yf.calls == 1
    np.testing.assert_allclose(bars["close"], fake_yf.frame["Close"])
    earlier = feed.bars(dt.date(2024, 5, 1), NOW)  # only up to the as-of date
    assert earlier.index[-1] == pd.Timestamp("2024-05-01")
    assert feed.default_asof(None, NOW) == dt.date(2024, 6, 3)
    assert feed.default_asof(dt.date(2024, 6, 3), NOW) is None


def test_yfinance_feed_refuses_stale_data_and_an_open_session(fake_yf: FakeDownload) -> None:
    fake_yf.frame = yahoo_history("2024-05-30")  # two sessions behind
    feed = YFinanceFeed("yfinance:SPY")
    with pytest.raises(StaleDataError, match="stale: its last bar is 2024-05-30"):
        feed.bars(dt.date(2024, 6, 3), NOW)
    during = pd.Timestamp("2024-06-03 15:00", tz="UTC")  # 11:00 in New York
    with pytest.raises(StaleDataError, match="has not closed yet"):
        feed.bars(dt.date(2024, 6, 3), during)
    with pytest.raises(DataError, match="in the future"):
        feed.bars(dt.date(2024, 6, 4), NOW)


def test_yfinance_offline_says_so(fake_yf: FakeDownload) -> None:
    fake_yf.offline = True
    with pytest.raises(DataError, match="no data for SPY"):
        YFinanceFeed("yfinance:SPY").bars(dt.date(2024, 6, 3), NOW)


def test_paper_account_on_the_yfinance_feed(
    fake_yf: FakeDownload, maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "yf.db"
    code, _, err = cli(
        capsys, "paper", "init", "--run", str(maml_run), "--feed", "yfinance:SPY", "--db", str(db)
    )
    assert code == 0, err
    for day in ("2024-05-28", "2024-05-29", "2024-05-30"):
        code, out, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", day)
        assert code == 0, err
        assert out.startswith(day)
    assert check_invariants(db) == 3
    assert fake_yf.calls >= 3  # every step refreshes the cache's tail


def test_live_loop_steps_the_latest_closed_session_and_waits_for_stale_data(
    fake_yf: FakeDownload, maml_run: Path, tmp_path: Path
) -> None:
    import threading

    from market_metarl.live.account import PaperSession, init_account
    from market_metarl.live.loop import run_loop

    db = tmp_path / "live.db"
    fake_yf.frame = yahoo_history("2024-05-31")  # the vendor has not published June 3 yet
    init_account(db, maml_run, "yfinance:SPY")
    stop, seen = threading.Event(), []

    def on_step(result: Any) -> None:
        seen.append(result)
        if result.status == "waiting":
            fake_yf.frame = yahoo_history("2024-06-03")  # published by the retry

    with PaperSession.open(db) as session:
        taken = run_loop(
            session, until=dt.date(2024, 6, 3), every=0.01, stop=stop, on_step=on_step,
            now=lambda: NOW,
        )  # fmt: skip
    assert [r.status for r in seen] == ["waiting", "stepped"]
    assert "stale" in seen[0].message and seen[1].date == "2024-06-03" and taken == 1
    assert check_invariants(db) == 1
