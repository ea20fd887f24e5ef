"""yfinance source with a parquet cache.

``fetch_yfinance(["SPY", "QQQ"])`` downloads several symbols in one call, retries with exponential
backoff, and merges what comes into a per-symbol parquet cache keyed by symbol, interval and
adjustment (``<cache>/yfinance/SPY_1d_adj.parquet``). A later fetch only asks for the tail (from a
few days before the last cached bar), so refreshing is cheap and a revised last bar is replaced.

yfinance does not raise when it cannot reach its servers: it returns an empty frame. That is
detected and turned into a :class:`DataError` that names the symbol and says whether a cached copy
exists (and how to use it: ``yfinance:SPY?offline=1``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from market_metarl.data.bars import BarsReport, validate_bars
from market_metarl.data.paths import cache_dir
from market_metarl.fileio import atomic_write
from market_metarl.types import DataError

REFRESH_OVERLAP_DAYS = 7
"""Calendar days re-downloaded before the last cached bar, so revised bars replace stale ones."""


def cache_path(symbol: str, interval: str = "1d", adjusted: bool = True) -> Path:
    """Parquet file caching ``symbol`` under the download cache (``^`` and ``/`` made file-safe)."""
    safe = symbol.upper().replace("/", "_").replace("^", "IDX_")
    return cache_dir() / "yfinance" / f"{safe}_{interval}_{'adj' if adjusted else 'raw'}.parquet"


def read_cache(symbol: str, interval: str = "1d", adjusted: bool = True) -> pd.DataFrame | None:
    """The cached bars of ``symbol`` as stored, or None when nothing is cached.

    Raises:
        DataError: The cache file exists but cannot be read (the message says to delete it).
    """
    path = cache_path(symbol, interval, adjusted)
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cached {symbol} at {path} is unreadable ({exc}); delete it and fetch again"
        ) from None


def _download(
    symbols: Sequence[str],
    start: str | None,
    end: str | None,
    interval: str,
    adjusted: bool,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> pd.DataFrame:
    import yfinance as yf

    last_exc: Exception | None = None
    for attempt in range(retries):
        try:
            frame = yf.download(
                list(symbols),
                start=start,
                end=end,
                interval=interval,
                auto_adjust=adjusted,
                group_by="ticker",
                progress=False,
                threads=False,
                multi_level_index=True,
            )
            if frame is not None and not frame.dropna(how="all").empty:
                return frame
        except Exception as exc:  # yfinance raises many types; retried, then reported below
            last_exc = exc
        if attempt + 1 < retries:
            sleep(backoff * 2**attempt)
    if last_exc is not None:
        raise DataError(
            f"yfinance failed for {', '.join(symbols)} after {retries} tries: {last_exc}"
        ) from None
    return pd.DataFrame()


def _split_symbols(frame: pd.DataFrame, symbols: Sequence[str]) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    if frame.empty:
        return out
    if isinstance(frame.columns, pd.MultiIndex):
        level0 = {str(v).upper(): v for v in frame.columns.get_level_values(0)}
        for sym in symbols:
            key = level0.get(sym.upper())
            if key is not None:
                out[sym.upper()] = frame[key]
    elif len(symbols) == 1:
        out[symbols[0].upper()] = frame
    return {s: f.dropna(how="all") for s, f in out.items() if not f.dropna(how="all").empty}


def fetch_yfinance(
    symbols: Sequence[str],
    start: str | None = None,
    end: str | None = None,
    interval: str = "1d",
    adjusted: bool = True,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, BarsReport]:
    """Download ``symbols`` into the cache (incrementally when cached) and return reports.

    Raises:
        DataError: Nothing came back for a symbol (offline, or an unknown ticker); the message says
            whether a cached copy exists. A blank symbol, or a ``start``/``end`` that is not
            ``YYYY-MM-DD`` or in the wrong order, before anything is read or downloaded.
    """
    _check_request(symbols, start, end)
    symbols = [s.upper() for s in symbols]
    cached = {s: read_cache(s, interval, adjusted) for s in symbols}
    if start is None and all(c is not None and len(c) for c in cached.values()):
        last = min(c.index[-1] for c in cached.values() if c is not None)
        start = (last - pd.Timedelta(days=REFRESH_OVERLAP_DAYS)).date().isoformat()
    frame = _download(symbols, start, end, interval, adjusted, retries, backoff, sleep)
    per_symbol = _split_symbols(frame, symbols)
    reports: dict[str, BarsReport] = {}
    for sym in symbols:
        fresh = per_symbol.get(sym)
        old = cached[sym]
        if fresh is None:
            where = (
                f"a cached copy through {old.index[-1].date()} exists (use yfinance:{sym}?offline=1)"
                if old is not None and len(old)
                else "no cached copy exists"
            )
            raise DataError(
                f"yfinance returned no data for {sym} (offline, or an unknown symbol?); {where}"
            )
        bars, report = validate_bars(_canonical(fresh), source=f"yfinance:{sym}")
        if old is not None and len(old):
            bars = pd.concat([old[~old.index.isin(bars.index)], bars]).sort_index()
            bars, report = validate_bars(bars, source=f"yfinance:{sym}")
        _write_atomic(bars, cache_path(sym, interval, adjusted))
        reports[sym] = report
    return reports


def _check_request(symbols: Sequence[str], start: str | None, end: str | None) -> None:
    """Symbols and dates of a fetch, checked before the cache is read or yfinance is asked."""
    for sym in symbols:
        if not sym.strip() or sym != sym.strip():
            raise DataError(f"symbol {sym!r} is blank or has spaces around it; write e.g. SPY")
    days: list[dt.date] = []
    for what, text in (("--start", start), ("--end", end)):
        if text is None:
            continue
        try:
            days.append(dt.date.fromisoformat(text))
        except ValueError:
            raise DataError(f"{what} {text!r} is not a date; write YYYY-MM-DD") from None
    if len(days) == 2 and days[0] > days[1]:
        raise DataError(f"--start {start} is after --end {end}; swap them")


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    cols: dict[str, Any] = {str(c).strip().lower(): c for c in frame.columns}
    index = pd.DatetimeIndex(frame.index, name="date")
    if index.tz is not None:
        index = index.tz_localize(None)
    out = pd.DataFrame(index=index)
    for name in ("open", "high", "low", "close", "volume"):
        if name in cols:
            # By position: ``index`` may be tz-naive now, and label alignment would give all NaN.
            out[name] = frame[cols[name]].to_numpy(dtype="float64")
    return out.dropna(subset=["close"])


def _write_atomic(bars: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, bars.to_parquet)


def load_yfinance(
    symbol: str, offline: bool = False, interval: str = "1d", adjusted: bool = True
) -> tuple[pd.DataFrame, BarsReport]:
    """Bars of ``symbol``: refresh the cache's tail (unless ``offline``), then read the cache."""
    if not offline:
        fetch_yfinance([symbol], interval=interval, adjusted=adjusted)
    cached = read_cache(symbol, interval, adjusted)
    if cached is None:
        raise DataError(
            f"no cached yfinance data for {symbol.upper()}; run `market-metarl data fetch {symbol}` "
            "with network access first"
        )
    return validate_bars(cached, source=f"yfinance:{symbol.upper()}")
