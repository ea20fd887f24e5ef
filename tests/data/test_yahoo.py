"""yfinance source: ``yfinance.download`` is replaced by a fake (never the network)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from market_metarl.data.paths import list_cached
from market_metarl.data.sources import load_bars
from market_metarl.data.yahoo import (
    REFRESH_OVERLAP_DAYS,
    cache_path,
    fetch_yfinance,
    load_yfinance,
    read_cache,
)
from market_metarl.types import DataError


def history(days: int, start: float, seed: int) -> pd.DataFrame:
    """Daily bars in yfinance's field names (auto-adjusted: no Adj Close)."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, 0.01, days)))
    open_ = close * np.exp(rng.normal(0.0, 0.003, days))
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) * 1.005,
            "Low": np.minimum(open_, close) * 0.995,
            "Close": close,
            "Volume": rng.integers(1_000_000, 2_000_000, days).astype(float),
        },
        index=pd.bdate_range("2024-01-02", periods=days, name="Date"),
    )


class FakeDownload:
    """Stands in for ``yfinance.download``: serves ``market`` in yfinance's group_by='ticker' shape.

    ``script`` holds what the next calls do: an exception to raise, ``"empty"`` for yfinance's
    offline answer, or ``None`` to serve data. When it runs out, data is served.
    """

    def __init__(self, real: Callable[..., Any]) -> None:
        self.signature = inspect.signature(real)
        self.market: dict[str, pd.DataFrame] = {}
        self.script: list[Exception | str | None] = []
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        bound = self.signature.bind(*args, **kwargs)  # the real API accepts these arguments
        call = dict(bound.arguments)
        self.calls.append(call)
        action = self.script.pop(0) if self.script else None
        if isinstance(action, Exception):
            raise action
        if action == "empty":
            return pd.DataFrame()
        tickers = call["tickers"]
        tickers = [tickers] if isinstance(tickers, str) else list(tickers)
        parts = {}
        for sym in tickers:
            frame = self.market.get(sym)
            if frame is None:
                continue
            if call.get("start"):
                frame = frame[frame.index >= pd.Timestamp(call["start"])]
            if call.get("end"):
                frame = frame[frame.index < pd.Timestamp(call["end"])]  # yfinance: end exclusive
            parts[sym] = frame
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, axis=1)
        out.columns.names = ["Ticker", "Price"]
        return out


@pytest.fixture
def yf(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> FakeDownload:
    import yfinance

    fake = FakeDownload(yfinance.download)
    monkeypatch.setattr(yfinance, "download", fake)
    return fake


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


def test_several_symbols_in_one_call_each_cached(yf: FakeDownload, cache_dir: Path) -> None:
    yf.market = {"SPY": history(30, 400.0, 1), "QQQ": history(30, 350.0, 2)}
    reports = fetch_yfinance(["spy", "QQQ"], sleep=no_sleep)
    assert len(yf.calls) == 1
    assert list(yf.calls[0]["tickers"]) == ["SPY", "QQQ"]
    assert yf.calls[0]["auto_adjust"] is True and yf.calls[0]["progress"] is False
    assert sorted(reports) == ["QQQ", "SPY"]
    for sym in ("SPY", "QQQ"):
        cached = read_cache(sym)
        assert cached is not None
        assert cache_path(sym).is_relative_to(cache_dir)
        np.testing.assert_array_equal(cached["close"], yf.market[sym]["Close"])
        assert reports[sym].rows == 30


def test_cache_is_keyed_by_symbol_interval_and_adjustment(cache_dir: Path) -> None:
    paths = {
        cache_path("SPY"),
        cache_path("QQQ"),
        cache_path("SPY", interval="1wk"),
        cache_path("SPY", adjusted=False),
    }
    assert len(paths) == 4
    assert cache_path("spy") == cache_dir / "yfinance" / "SPY_1d_adj.parquet"
    assert cache_path("SPY", "1wk", adjusted=False).name == "SPY_1wk_raw.parquet"


def test_unadjusted_fetch_writes_its_own_cache_file(yf: FakeDownload) -> None:
    yf.market = {"SPY": history(10, 400.0, 1)}
    fetch_yfinance(["SPY"], adjusted=False, sleep=no_sleep)
    assert yf.calls[0]["auto_adjust"] is False
    assert cache_path("SPY", adjusted=False).is_file()
    assert not cache_path("SPY").is_file()


def test_failures_are_retried_with_exponential_backoff(yf: FakeDownload) -> None:
    yf.market = {"SPY": history(10, 400.0, 1)}
    yf.script = [ConnectionError("reset"), TimeoutError("slow")]
    sleeps: list[float] = []
    reports = fetch_yfinance(["SPY"], retries=3, backoff=0.5, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0]
    assert len(yf.calls) == 3
    assert reports["SPY"].rows == 10


def test_persistent_failure_raises_after_all_tries(yf: FakeDownload) -> None:
    yf.script = [ConnectionError("down")] * 4
    sleeps: list[float] = []
    with pytest.raises(DataError, match=r"yfinance failed for SPY after 4 tries: down"):
        fetch_yfinance(["SPY"], retries=4, backoff=2.0, sleep=sleeps.append)
    assert sleeps == [2.0, 4.0, 8.0]
    assert not cache_path("SPY").exists()


def test_offline_without_cache_names_symbol_and_says_no_copy(yf: FakeDownload) -> None:
    yf.script = ["empty"] * 3
    sleeps: list[float] = []
    with pytest.raises(DataError) as info:
        fetch_yfinance(["SPY"], sleep=sleeps.append)
    message = str(info.value)
    assert "SPY" in message and "no cached copy exists" in message
    assert len(sleeps) == 2  # an empty answer is retried like an error


def test_offline_with_cache_names_symbol_and_the_cached_copy(yf: FakeDownload) -> None:
    yf.market = {"SPY": history(20, 400.0, 1)}
    fetch_yfinance(["SPY"], sleep=no_sleep)
    before = read_cache("SPY")
    yf.script = ["empty"] * 3
    with pytest.raises(DataError) as info:
        fetch_yfinance(["SPY"], sleep=lambda s: None)
    message = str(info.value)
    last = yf.market["SPY"].index[-1].date().isoformat()
    assert "SPY" in message
    assert f"a cached copy through {last} exists" in message
    assert "yfinance:SPY?offline=1" in message
    after = read_cache("SPY")
    assert after is not None and before is not None
    pd.testing.assert_frame_equal(after, before)


def test_unknown_symbol_among_several_is_named(yf: FakeDownload) -> None:
    yf.market = {"SPY": history(10, 400.0, 1)}
    with pytest.raises(DataError, match=r"no data for NOPE"):
        fetch_yfinance(["SPY", "NOPE"], sleep=no_sleep)


def test_refresh_asks_only_for_the_tail_and_replaces_revised_bars(yf: FakeDownload) -> None:
    full = history(40, 400.0, 1)
    yf.market = {"SPY": full.iloc[:30].copy()}
    fetch_yfinance(["SPY"], sleep=no_sleep)
    assert yf.calls[0]["start"] is None
    last_cached = full.index[29]

    revised = full.copy()
    revised.loc[full.index[28], ["Close", "High"]] = [999.0, 1000.0]  # vendor revises a bar
    yf.market = {"SPY": revised}
    fetch_yfinance(["SPY"], sleep=no_sleep)

    start = pd.Timestamp(yf.calls[1]["start"])
    assert last_cached - pd.Timedelta(days=REFRESH_OVERLAP_DAYS) <= start <= last_cached
    assert start > full.index[0]
    merged = read_cache("SPY")
    assert merged is not None
    assert merged.index.equals(pd.DatetimeIndex(full.index, name="date"))
    assert merged.loc[full.index[28], "close"] == 999.0
    assert merged.loc[full.index[39], "close"] == full["Close"].iloc[39]
    assert merged.loc[full.index[0], "close"] == full["Close"].iloc[0]


def test_timezone_aware_index_is_cached_naive(yf: FakeDownload) -> None:
    frame = history(10, 400.0, 1)
    frame.index = pd.DatetimeIndex(frame.index).tz_localize("America/New_York")
    yf.market = {"SPY": frame}
    fetch_yfinance(["SPY"], sleep=no_sleep)
    cached = read_cache("SPY")
    assert cached is not None and isinstance(cached.index, pd.DatetimeIndex)
    assert cached.index.tz is None
    assert cached.index[0] == pd.Timestamp("2024-01-02")


def test_offline_load_reads_the_cache_without_downloading(yf: FakeDownload) -> None:
    yf.market = {"SPY": history(10, 400.0, 1)}
    fetch_yfinance(["SPY"], sleep=no_sleep)
    yf.script = [AssertionError("must not download")]
    bars = load_bars("yfinance:spy?offline=1")
    assert len(yf.calls) == 1
    np.testing.assert_array_equal(bars["close"], yf.market["SPY"]["Close"])


def test_offline_load_without_cache_says_how_to_fetch(yf: FakeDownload) -> None:
    with pytest.raises(DataError, match=r"no cached yfinance data for SPY.*data fetch SPY"):
        load_yfinance("SPY", offline=True)
    assert yf.calls == []


def test_list_cached_names_symbols_with_their_files(yf: FakeDownload) -> None:
    yf.market = {"SPY": history(10, 400.0, 1), "^VIX": history(10, 20.0, 3)}
    fetch_yfinance(["SPY", "^VIX"], sleep=no_sleep)
    assert list_cached() == [("^VIX", cache_path("^VIX")), ("SPY", cache_path("SPY"))]


def test_unreadable_cache_file_is_a_data_error(cache_dir: Path) -> None:
    path = cache_path("SPY")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"cached SPY at .* is unreadable.*delete it"):
        read_cache("SPY")
