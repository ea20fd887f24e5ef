"""The ``alpaca:SPY`` feed against the fake Alpaca data API: the same bars as the source it serves,
dated by session (UTC dates), in pages; today's partial bar never used before the close; stale
data, bad bars and missing keys refused with one line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("alpaca")

from alpaca_fake import at
from live_helpers import cli

from market_metarl.data.sources import load_bars
from market_metarl.live.feeds import AlpacaFeed, StaleDataError, open_feed
from market_metarl.types import DataError

FIRST, LAST = "2019-01-02", "2019-03-29"


def serve(fake: Any, first: str = FIRST, last: str = LAST) -> pd.DataFrame:
    """Serve the bundled SPY bars from ``first`` to ``last`` as Alpaca's daily bars."""
    bars = load_bars("bundled:SPY").loc[first:last]
    columns = [bars[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")]
    fake.daily["SPY"] = [
        (d.date(), *(float(col[i]) for col in columns)) for i, d in enumerate(bars.index)
    ]
    return bars


def utc(day: str, hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(at(day, hhmm)).tz_convert("UTC")


def test_alpaca_bars_are_the_served_bars_by_session_across_pages(fake_alpaca: Any) -> None:
    want = serve(fake_alpaca)
    fake_alpaca.page_size = 7  # 60 bars: 9 pages, alpaca-py follows next_page_token
    fake_alpaca.now = at(LAST, "20:00")
    feed = open_feed("alpaca:SPY")
    assert isinstance(feed, AlpacaFeed) and feed.live and feed.symbol == "SPY"
    now = utc(LAST, "20:00")
    got = AlpacaFeed("alpaca:SPY", clock=lambda: now).bars(dt.date(2019, 3, 29), now)
    pd.testing.assert_frame_equal(got, want)  # midnight-ET stamps -> the session's date
    pages = [p for m, p in fake_alpaca.requests if p == "/v2/stocks/bars"]
    assert len(pages) == 9


def test_todays_partial_bar_is_never_used_before_the_close(fake_alpaca: Any) -> None:
    want = serve(fake_alpaca)
    day = "2019-03-29"
    fake_alpaca.now = at(day, "15:00")  # the fake serves a partial bar for the 29th now
    now = utc(day, "15:00")
    feed = AlpacaFeed("alpaca:SPY", clock=lambda: now)
    history = feed.history()
    assert history.index[-1] == pd.Timestamp("2019-03-28")
    pd.testing.assert_frame_equal(history, want.iloc[:-1])
    with pytest.raises(StaleDataError, match="has not closed yet"):
        feed.bars(dt.date(2019, 3, 29), now)
    assert feed.default_asof(None, now) == dt.date(2019, 3, 28)
    later = utc(day, "16:30")  # after the close: the bar is complete and used
    fake_alpaca.now = at(day, "16:30")
    closed = AlpacaFeed("alpaca:SPY", clock=lambda: later).bars(dt.date(2019, 3, 29), later)
    pd.testing.assert_frame_equal(closed, want)


def test_a_missing_bar_is_stale_and_a_bad_bar_is_refused(fake_alpaca: Any) -> None:
    serve(fake_alpaca, last="2019-03-28")  # the vendor has not published the 29th
    fake_alpaca.now = at("2019-03-29", "20:00")
    now = utc("2019-03-29", "20:00")
    with pytest.raises(StaleDataError, match="last bar is 2019-03-28"):
        AlpacaFeed("alpaca:SPY", clock=lambda: now).bars(dt.date(2019, 3, 29), now)
    day, o, _, low, c, v = fake_alpaca.daily["SPY"][5]
    fake_alpaca.daily["SPY"][5] = (day, o, low * 0.9, low, c, v)  # high below low
    with pytest.raises(DataError, match=f"alpaca:SPY.*{day}"):
        AlpacaFeed("alpaca:SPY", clock=lambda: now).history()


def test_bad_specs_and_missing_keys_are_one_error_line(
    fake_alpaca: Any,
    maml_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for spec in ("alpaca:spy", "alpaca:SPY?feed=otc", "alpaca:"):
        with pytest.raises(DataError, match="give alpaca:SYMBOL"):
            open_feed(spec)
    serve(fake_alpaca)
    db = tmp_path / "a.db"
    base = ["paper", "init", "--run", str(maml_run), "--feed", "alpaca:SPY", "--db", str(db)]
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    code, out, err = cli(capsys, *base)
    assert code == 2 and not out and not db.exists()
    (line,) = err.strip().splitlines()
    assert line == (
        "error: the alpaca:SPY feed needs the account's API keys: set APCA_API_KEY_ID and "
        "APCA_API_SECRET_KEY in the environment (paper keys: Alpaca dashboard, paper account, "
        "API keys)"
    )
    assert not [p for _, p in fake_alpaca.requests if "bars" in p]
