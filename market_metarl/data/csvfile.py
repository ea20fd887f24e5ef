"""Read daily bars from CSV files in the common layouts, without being told which.

Recognised layouts (column names are matched case-insensitively, surrounding ``<>`` removed):

* Yahoo: ``Date,Open,High,Low,Close,Adj Close,Volume``. When ``Adj Close`` is present, open/high/low/
  close are multiplied by ``Adj Close / Close`` so the bars are split- and dividend-adjusted.
* stooq: ``<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>`` (``DATE`` as
  ``yyyymmdd``).
* Lower case ``date,open,high,low,close,volume``, with or without a leading unnamed index column.
* A ``timestamp`` column instead of ``date`` (ISO strings or Unix epoch seconds/milliseconds).
* Long files with a ticker column (several symbols): choose one with ``csv:FILE?symbol=AAPL``.

Compressed files (``.gz``, ``.zip``, ...) are read through pandas. Every read ends in
:func:`~market_metarl.data.bars.validate_bars`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from market_metarl.data.bars import BarsReport, validate_bars
from market_metarl.data.repair import RepairPolicy
from market_metarl.types import DataError

_ALIASES = {
    "date": "date",
    "datetime": "date",
    "time": "time",
    "timestamp": "timestamp",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adj close": "adj_close",
    "adj_close": "adj_close",
    "adjclose": "adj_close",
    "volume": "volume",
    "vol": "volume",
    "ticker": "ticker",
    "symbol": "ticker",
    "per": "per",
    "openint": "openint",
}


def _normalise(name: object) -> str:
    key = str(name).strip().strip("<>").strip().lower()
    return _ALIASES.get(key, key)


def read_csv_bars(
    path: str | Path, symbol: str | None = None, repair: RepairPolicy | None = None
) -> tuple[pd.DataFrame, BarsReport]:
    """Read a bars file in any recognised layout.

    Args:
        path: The file (a relative path is relative to the current working directory).
        symbol: For long files with a ticker column, the symbol to keep.
        repair: What to do with bad rows (default: refuse the file); see
            :mod:`market_metarl.data.repair`.

    Returns:
        Validated bars and the validation report (its notes say which layout was recognised).

    Raises:
        DataError: The file is missing, empty, not a table, or fails validation.
    """
    p = Path(path)
    source = f"csv:{p}"
    _check_file(p, source)
    raw = _read_table(p, source)
    raw.columns = [_normalise(c) for c in raw.columns]
    raw = raw.loc[:, [not c.startswith("unnamed") and c != "" for c in raw.columns]]
    notes: list[str] = []
    raw = _select_symbol(raw, symbol, source, notes)
    frame, layout = _to_bars(raw, source)
    notes.insert(0, f"layout: {layout}")
    bars, report = validate_bars(frame, source=source, repair=repair)
    report.notes[:0] = notes
    return bars, report


MAX_FILE_BYTES = 256 * 2**20
"""Largest bars file read (256 MiB, some 3 million daily rows): a bigger one is refused before
it is read, since it is no export of daily bars (split a long file per symbol)."""


def _check_file(p: Path, source: str) -> None:
    """Refuse a path that is no readable file of sensible size, saying what it is instead."""
    if p.is_dir():
        raise DataError(f"{source}: is a folder, not a file; give one file of daily bars")
    if p.is_symlink() and not p.exists():
        raise DataError(f"{source}: is a broken or looping symlink; point it at a real file")
    if not p.is_file():
        raise DataError(f"{source}: no such file; check the path (relative to {Path.cwd()})")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{source}: the file has {size / 2**20:.0f} MiB, more than the "
            f"{MAX_FILE_BYTES / 2**20:.0f} MiB a file of daily bars may have; split it per symbol"
        )
    if size == 0:
        raise DataError(f"{source}: the file is empty; export daily bars with a header row")
    with p.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            raise DataError(f"{source}: a Parquet file is a binary file, not a CSV table of bars")


def _read_table(p: Path, source: str) -> pd.DataFrame:
    if p.suffix.lower() in {".csv", ".txt", ""}:
        with p.open("rb") as fh:  # the head alone: a 100 MB file is not read to sniff it
            head = fh.read(4096)
        if b"\x00" in head:
            raise DataError(f"{source}: this is a binary file, not a CSV table of daily bars")
        try:
            dialect = csv.Sniffer().sniff(head.decode("utf-8", errors="replace"), ",;\t|")
            sep = dialect.delimiter
        except csv.Error:
            sep = ","
    else:
        sep = ","
    try:
        raw = pd.read_csv(p, sep=sep)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"{source}: not a readable CSV table ({str(exc).splitlines()[0]}); "
            "expected a header like Date,Open,High,Low,Close,Volume"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{source}: the file is empty; export daily bars with a header row"
        ) from None
    if raw.shape[1] < 2:
        raise DataError(
            f"{source}: not a table of bars (found {raw.shape[1]} column); "
            "expected a header like Date,Open,High,Low,Close,Volume"
        )
    if len(raw) == 0:
        raise DataError(f"{source}: header only, no data rows")
    return raw


def _select_symbol(
    raw: pd.DataFrame, symbol: str | None, source: str, notes: list[str]
) -> pd.DataFrame:
    if "ticker" not in raw.columns:
        return raw
    tickers = raw["ticker"].astype(str).str.upper().str.removesuffix(".US")
    present = sorted(tickers.unique())
    if symbol is None:
        if len(present) > 1:
            raise DataError(
                f"{source}: the file holds several symbols ({', '.join(present[:10])}); "
                f"choose one with csv:FILE?symbol={present[0]}"
            )
        notes.append(f"symbol: {present[0]}")
        return raw.drop(columns="ticker")
    keep = tickers == symbol.upper()
    if not keep.any():
        raise DataError(f"{source}: no rows for symbol {symbol}; the file has {', '.join(present)}")
    notes.append(f"symbol: {symbol.upper()}")
    return raw.loc[keep].drop(columns="ticker")


def _to_bars(raw: pd.DataFrame, source: str) -> tuple[pd.DataFrame, str]:
    cols = set(raw.columns)
    date_col = "date"
    if {"per", "date", "time"} <= cols:
        layout = "stooq"
        dates = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d", errors="coerce")
    elif "date" in cols:
        layout = "yahoo" if "adj_close" in cols else "date,open,high,low,close,volume"
        dates = _parse_dates(raw["date"], source)
    elif "timestamp" in cols:
        layout = "timestamp"
        dates = _parse_timestamps(raw["timestamp"], source)
        date_col = "timestamp"
    else:
        raise DataError(
            f"{source}: no date column (found {', '.join(map(str, raw.columns))}); "
            "name it Date, date, <DATE> or timestamp"
        )
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        # The file line of a row: the header is line 1 and ``raw`` keeps its RangeIndex labels.
        rows = ", ".join(f"row {raw.index[i] + 2} ('{raw[date_col].iloc[i]}')" for i in bad[:3])
        if _normalise(str(raw[date_col].iloc[bad[0]])) == date_col:
            raise DataError(
                f"{source}: the header repeats at {rows.split(',')[0]} (files appended to each "
                "other?); keep one header row"
            )
        raise DataError(f"{source}: unparseable date at {rows}; use YYYY-MM-DD dates")
    missing = [c for c in ("open", "high", "low", "close") if c not in cols]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} "
            f"(found {', '.join(map(str, raw.columns))}); bars need Open, High, Low, Close"
        )
    frame = raw[[c for c in ("open", "high", "low", "close", "volume") if c in cols]].copy()
    frame.index = pd.DatetimeIndex(dates, name="date")
    if "adj_close" in cols:
        layout = _adjust(frame, raw, source, layout)
    return frame, layout


def _adjust(frame: pd.DataFrame, raw: pd.DataFrame, source: str, layout: str) -> str:
    """Scale OHLC in place by Adj Close / Close; bad OHLC cells are left for validation to name.

    A cell that is not a number keeps its text and a non-finite price stays non-finite, so
    validation names them (and a repair policy of ``drop`` can drop their rows); every other
    cell is scaled.
    """
    prices = ("open", "high", "low", "close")
    numeric = {c: pd.to_numeric(frame[c], errors="coerce") for c in prices}
    adj = pd.to_numeric(raw["adj_close"], errors="coerce").to_numpy(dtype="float64")
    close = numeric["close"].to_numpy(dtype="float64")
    usable = np.isfinite(close) & (close > 0)
    bad = usable & ~(np.isfinite(adj) & (adj > 0))
    if bad.any():
        dates = ", ".join(d.date().isoformat() for d in frame.index[bad][:3])
        raise DataError(
            f"{source}: Adj Close is missing, non-finite or not positive on {dates}; fill it, or "
            "delete the Adj Close column to read unadjusted prices"
        )
    # Rows with a missing or non-positive Close keep factor 1, so validation reports them as such.
    with np.errstate(over="ignore", under="ignore"):  # an absurd ratio is caught as inf or 0
        factor = np.divide(adj, close, out=np.ones_like(close), where=usable)
        for c in numeric:
            scaled = numeric[c] * factor
            frame[c] = scaled.where(numeric[c].notna(), frame[c])
    return layout + " (OHLC adjusted by Adj Close / Close)"


NUMERIC_DATE = r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})$"
"""A day and a month in some order, then the year (``01/02/2020``, ``31.12.2020``)."""


def _parse_dates(col: pd.Series, source: str) -> pd.Series:
    """Dates by one stated rule, never guessed (unparseable ones become NaT).

    ``yyyymmdd`` (stooq) and ISO 8601 (``2020-01-31``, with an optional time and offset,
    converted to UTC) are read as such. Dates like ``01/02/2020`` are read day-first when some
    first field is above 12, month-first when some second field is, and refused as ambiguous
    when every one could be either; a column that mixes them with ISO dates is refused.
    """
    text = col.astype(str).str.strip()
    if text.str.fullmatch(r"\d{8}").all():
        return pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    parts = text.str.extract(NUMERIC_DATE)
    numeric = parts[0].notna()
    if numeric.any():
        return _parse_day_month(text, parts, numeric, source)
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    return parsed.dt.tz_localize(None)


def _parse_day_month(
    text: pd.Series, parts: pd.DataFrame, numeric: pd.Series, source: str
) -> pd.Series:
    """Dates like ``01/02/2020``: day-first or month-first, decided by the column as a whole."""
    if not numeric.all():
        other = text[~numeric].iloc[0]
        raise DataError(
            f"{source}: mixed date formats ({text[numeric].iloc[0]!r} and {other!r}); write every date "
            "as YYYY-MM-DD"
        )
    first, second = parts[0].astype(int), parts[2].astype(int)
    if (first > 12).any():
        order = "%d{0}%m{0}%Y"
    elif (second > 12).any():
        order = "%m{0}%d{0}%Y"
    else:
        raise DataError(
            f"{source}: ambiguous dates ({text.iloc[0]!r} could be day-first or month-first, and no date "
            "has a day above 12 to tell); write them as YYYY-MM-DD"
        )
    return pd.to_datetime(text, format=order.format(parts[1].iloc[0]), errors="coerce")


def _parse_timestamps(col: pd.Series, source: str) -> pd.Series:
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().all():
        if numeric.abs().max() > 1e11:
            return pd.to_datetime(numeric, unit="ms", errors="coerce")
        return pd.to_datetime(numeric, unit="s", errors="coerce")
    return _parse_dates(col, source)
