"""Rebuild the bundled real market data in ``data/`` from the raw files in ``../shared/data/raw``.

Deterministic: the same raw files give the same bytes (parquet written with pyarrow, no pandas
metadata, fixed compression), so ``data/MANIFEST.csv`` and its sha256 column only change when the
data does. Provenance of every raw file is in ``shared/data/raw/SOURCES.md``.

What is shipped:

* QuantConnect Lean sample equities (Apache-2.0): raw prices x 1/10000, split- and
  dividend-adjusted with the Lean factor files, rows before the listing date in the map file
  dropped (they belong to an earlier security that used the ticker), a few documented per-ticker
  fixes (``LEAN_SPECIAL``) and reviewed bad prints repaired (``BAD_PRINTS``). After adjusting,
  every split date is checked for a leftover jump; the build fails if one remains.
* arch's S&P 500 and NASDAQ Composite indices (NCSA): Yahoo layout, no adjustment needed.
* CBOE VIX (ODC-PDDL-1.0): no volume; rows whose high/low do not contain open/close are widened
  (two absurd opens are set to the previous close instead).

Usage::

    python scripts/build_bundled_data.py --raw ../shared/data/raw --out data
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from market_metarl.data.bars import SPLIT_LIKE_MOVE, split_suspects, validate_bars
from market_metarl.data.bundled import MANIFEST_COLUMNS
from market_metarl.types import BAR_COLUMNS, DataError

LEAN_DIR = "quantconnect-lean/Data/equity/usa"
LEAN_UPSTREAM = "github.com/QuantConnect/Lean@24863901deffa9ec7985e21ef8fbdb0258efb9e4"
ARCH_UPSTREAM = "pypi.org/project/arch 8.0.0 wheel (arch/data)"
VIX_UPSTREAM = "github.com/datasets/finance-vix@6f56e2760520824b787cf6b85945c62186d38bc6"

LEAN_TICKERS: tuple[str, ...] = (
    "AAPL",
    "AIG",
    "BAC",
    "BNO",
    "EEM",
    "FB",
    "GOOG",
    "GOOGL",
    "IBM",
    "IWM",
    "QQQ",
    "SPY",
    "USO",
)

LEAN_PRICE_SCALE = 10_000.0
"""Lean stores equity prices as integers in units of 1/10000 dollar."""

MAX_SPLIT_DAY_MOVE = 0.25
"""After adjustment, the overnight log move on a split date must stay below this."""

KNOWN_SPLITS: dict[str, tuple[str, ...]] = {
    "AAPL": ("2000-06-21", "2005-02-28", "2014-06-09", "2020-08-31"),
    "AIG": ("2009-07-01",),
    "BAC": ("2004-08-30",),
    "BNO": ("2013-08-29",),
    "EEM": ("2005-06-09", "2008-07-24"),
    "GOOG": ("2014-04-03",),
    "GOOGL": ("2014-04-03",),
    "IBM": ("1999-05-27",),
    "IWM": ("2005-06-09",),
    "QQQ": ("2000-03-20",),
    "USO": ("2020-04-29",),
}
"""Split dates named in SOURCES.md (unadjusted jumps there), checked on top of every split found in
the factor files. A date outside a ticker's kept range is skipped."""


@dataclass(frozen=True)
class LeanSpecial:
    """A per-ticker fix on top of the generic Lean rules.

    Attributes:
        first_date: Drop rows before this date (later than the map file's listing date).
        why: The reason, written into the manifest notes.
        history_from: Another Lean file whose rows before ``history_until`` (inclusive) are this
            ticker's history (the map file says it traded under that ticker then).
        history_until: Last date taken from ``history_from``.
    """

    first_date: str | None = None
    why: str = ""
    history_from: str | None = None
    history_until: str | None = None


LEAN_SPECIAL: dict[str, LeanSpecial] = {
    "QQQ": LeanSpecial(
        first_date="2011-03-23",
        why=(
            "kept from 2011-03-23 only: no rows 2004-12-01..2011-03-22 (QQQ traded as QQQQ "
            "then and that file is not in the Lean repo); a six-year hole would make every "
            "rolling feature span it, and the dot-com era is covered by the NASDAQ index"
        ),
    ),
    "GOOG": LeanSpecial(
        first_date="2014-04-03",
        why=(
            "kept from 2014-04-03 (first class-C trading day): the map file says GOOG was the "
            "when-issued GOOCV 2014-03-27..2014-04-02 (file not in the repo) and goog.zip rows for "
            "those dates are the old class-A prices (~1135 vs ~570) which the factor file does not "
            "split-adjust; earlier goog.zip rows are GOOGL's history"
        ),
    ),
    "GOOGL": LeanSpecial(
        history_from="GOOG",
        history_until="2014-04-02",
        why=(
            "2004-08-19..2014-04-02 taken from goog.zip: the GOOGL map file says the class-A "
            "share traded as GOOG then (googl.zip starts 2014-04-03); adjusted with the GOOGL "
            "factor file (2:1 split on 2014-04-03)"
        ),
    ),
}


BAD_PRINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "AAPL": (
        ("2000-11-01", "low"),
        ("2001-04-05", "high"),
        ("2009-09-21", "low"),
        ("2010-08-31", "low"),
        ("2011-01-03", "low"),
    ),
    "AIG": (("2003-11-04", "low"), ("2009-05-05", "high")),
    "BAC": (
        ("1998-04-24", "low"),
        ("2000-02-29", "low"),
        ("2001-11-12", "low"),
        ("2001-12-12", "low"),
    ),
    "EEM": (("2005-04-11", "open"),),
    "GOOGL": (("2007-12-18", "low"), ("2008-09-30", "bar")),
    "IBM": (
        ("1999-01-25", "low"),
        ("2000-10-26", "high"),
        ("2002-08-26", "low"),
        ("2002-11-07", "low"),
        ("2002-12-23", "open"),
    ),
    "IWM": (("2008-09-19", "high"),),
    "SPY": (("2000-12-18", "open"), ("2002-04-02", "high")),
}
"""Bad prints in the Lean files, reviewed one by one: a high or low 20 % to 17x beyond the day's
open, close and previous close on a day with no market event (decimal slips like AAPL's 0.33 low
on a 5.7 stock, doubled highs), or an open that jumps 15-50 % away and is back by the close while
also being the day's high or low. ``high``/``low``: set to max/min(open, close); ``open``: set to
the previous close (and the high or low it defined re-derived); ``bar``: the row is dropped
(GOOGL 2008-09-30: low 0.005 and a close 26 % below both neighbours). Wide ranges on real events
were reviewed and kept: AAPL 2010-05-06 (flash crash), AIG 2008-09-15/16 and 2009-03-16, BAC
2009-02-05/20, USO 2020-04-21 (negative oil futures), AAPL 2000-09-29 (profit warning)."""

BAD_PRINT_MIN_MOVE = 0.13
"""A listed bad print must be at least this far (log) from the rest of its bar, or the build fails
(so a stale list never silently rewrites good data)."""


Bar = dict[str, float]


def _check_listed(symbol: str, day: str, field: str, bar: Bar, prev_close: float) -> None:
    body_hi, body_lo = max(bar["open"], bar["close"]), min(bar["open"], bar["close"])
    distance = {
        "high": np.log(bar["high"] / body_hi),
        "low": np.log(body_lo / bar["low"]),
        "open": abs(np.log(bar["open"] / prev_close)),
        "bar": abs(np.log(bar["close"] / prev_close)),
    }[field]
    if not distance > BAD_PRINT_MIN_MOVE:
        raise DataError(
            f"{symbol} {day}: listed as a bad {field} print but it is only {distance:.3f} "
            "(log) off; remove it from BAD_PRINTS"
        )


def _repaired_bar(bar: Bar, field: str, prev_close: float) -> Bar:
    """The bar with its bad ``open``, ``high`` or ``low`` replaced (see BAD_PRINTS)."""
    new = dict(bar)
    if field == "open":
        new["open"] = prev_close
        if bar["high"] == bar["open"]:
            new["high"] = max(new["open"], bar["close"])
        if bar["low"] == bar["open"]:
            new["low"] = min(new["open"], bar["close"])
    elif field == "high":
        new["high"] = max(bar["open"], bar["close"])
    else:
        new["low"] = min(bar["open"], bar["close"])
    new["high"] = max(new["high"], new["open"], new["close"])
    new["low"] = min(new["low"], new["open"], new["close"])
    return new


def repair_bad_prints(symbol: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Repair the reviewed bad prints of one symbol; returns the frame and one note per repair."""
    out = frame.copy()
    notes = []
    for day, field in BAD_PRINTS.get(symbol, ()):
        hits = np.flatnonzero(out.index == pd.Timestamp(day))
        if len(hits) != 1:
            raise DataError(f"{symbol} {day}: listed in BAD_PRINTS but not in the data")
        pos = int(hits[0])
        bar: Bar = {c: float(out[c].iloc[pos]) for c in BAR_COLUMNS}
        prev_close = float(out["close"].iloc[pos - 1])
        _check_listed(symbol, day, field, bar, prev_close)
        if field == "bar":
            out = out.drop(index=out.index[pos])
            ohlc = "/".join(f"{bar[c]:.4g}" for c in ("open", "high", "low", "close"))
            notes.append(f"{day} bar dropped (O/H/L/C {ohlc})")
            continue
        new = _repaired_bar(bar, field, prev_close)
        for col in ("open", "high", "low"):
            out.at[out.index[pos], col] = new[col]
        notes.append(f"{day} {field} {bar[field]:.4g} -> {new[field]:.4g}")
    return out, notes


@dataclass(frozen=True)
class Dataset:
    """One shipped symbol: its bars and what the manifest says about them."""

    symbol: str
    frame: pd.DataFrame
    source: str
    licence: str
    adjusted: str
    notes: str


# --- Lean equities ---------------------------------------------------------------------------


def _lean_path(raw: Path, kind: str, ticker: str) -> Path:
    suffix = "zip" if kind == "daily" else "csv"
    return raw / LEAN_DIR / kind / f"{ticker.lower()}.{suffix}"


def read_lean_daily(path: Path) -> pd.DataFrame:
    """Raw (unadjusted) Lean daily bars in dollars, indexed by date."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if len(names) != 1:
            raise DataError(f"{path}: expected one CSV in the zip, found {names}")
        text = archive.read(names[0]).decode("ascii")
    frame = pd.read_csv(
        io.StringIO(text), header=None, names=["date", *BAR_COLUMNS], dtype={"date": str}
    )
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date"), format="%Y%m%d %H:%M"))
    frame.index.name = "date"
    frame = frame.astype("float64")
    frame[["open", "high", "low", "close"]] /= LEAN_PRICE_SCALE
    return frame


def read_factor_file(path: Path) -> pd.DataFrame:
    """Lean factor file rows ``date, price_factor, split_factor, reference_price``, sorted."""
    frame = pd.read_csv(
        path,
        header=None,
        names=["date", "price_factor", "split_factor", "reference_price"],
        dtype={"date": str},
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


def read_map_file(path: Path) -> pd.DataFrame:
    """Lean map file rows ``date, ticker``; the first row is the listing date."""
    frame = pd.read_csv(
        path, header=None, names=["date", "ticker", "exchange"], dtype={"date": str}
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


def apply_factors(raw: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """Split- and dividend-adjust raw bars.

    A bar dated d uses the first factor row whose date >= d; adjusted price = raw x price_factor x
    split_factor and volume = raw volume / split_factor (post-split shares).
    """
    pos = np.searchsorted(factors["date"].to_numpy(), raw.index.to_numpy(), side="left")
    if (pos >= len(factors)).any():
        late = raw.index[pos >= len(factors)][0].date()
        raise DataError(f"bar {late} is after the last factor-file row; the factor file is stale")
    price_factor = factors["price_factor"].to_numpy()[pos]
    split_factor = factors["split_factor"].to_numpy()[pos]
    out = raw.copy()
    for col in ("open", "high", "low", "close"):
        out[col] = raw[col].to_numpy() * price_factor * split_factor
    out["volume"] = raw["volume"].to_numpy() / split_factor
    return out


def factor_split_dates(factors: pd.DataFrame, index: pd.Index) -> list[pd.Timestamp]:
    """First bar after every factor row where the split factor changes (the split's ex-date)."""
    split = factors["split_factor"].to_numpy()
    out = []
    for i in np.flatnonzero(split[:-1] != split[1:]):
        after = index[index > factors["date"].iloc[i]]
        if len(after):
            out.append(after[0])
    return out


def overnight_log_moves(frame: pd.DataFrame) -> pd.Series:
    """log(open[t] / close[t-1]) indexed by t (the first row has none)."""
    close = frame["close"].to_numpy()
    moves = np.log(frame["open"].to_numpy()[1:] / close[:-1])
    return pd.Series(moves, index=frame.index[1:])


def check_splits(ticker: str, frame: pd.DataFrame, dates: list[pd.Timestamp]) -> int:
    """Fail loudly if any split date still shows a jump; returns how many dates were checked."""
    moves = overnight_log_moves(frame)
    checked = 0
    for date in sorted(set(dates)):
        if date not in moves.index:
            continue
        checked += 1
        move = float(moves.loc[date])
        if abs(move) >= MAX_SPLIT_DAY_MOVE:
            raise DataError(
                f"{ticker}: overnight log move {move:+.3f} on split date {date.date()} after "
                f"adjustment (limit {MAX_SPLIT_DAY_MOVE}); the factor file does not cover this "
                "split"
            )
    return checked


def build_lean(raw_dir: Path, ticker: str) -> Dataset:
    """Adjusted, listing-trimmed bars of one Lean ticker, with its split dates verified."""
    special = LEAN_SPECIAL.get(ticker, LeanSpecial())
    factors = read_factor_file(_lean_path(raw_dir, "factor_files", ticker))
    listing = read_map_file(_lean_path(raw_dir, "map_files", ticker))["date"].iloc[0]
    raw = read_lean_daily(_lean_path(raw_dir, "daily", ticker))
    sources = [_lean_path(raw_dir, "daily", ticker)]
    notes = []
    if special.history_from is not None:
        until = pd.Timestamp(str(special.history_until))
        history = read_lean_daily(_lean_path(raw_dir, "daily", special.history_from))
        raw = pd.concat([history[history.index <= until], raw[raw.index > until]])
        sources.insert(0, _lean_path(raw_dir, "daily", special.history_from))
    frame = apply_factors(raw, factors)
    dropped = int((frame.index < listing).sum())
    frame = frame[frame.index >= listing]
    if dropped:
        notes.append(
            f"{dropped} rows before the listing date {listing.date()} (map file) dropped: "
            "they belong to an earlier security"
        )
    if special.first_date is not None:
        first = pd.Timestamp(special.first_date)
        notes.append(f"{int((frame.index < first).sum())} more rows dropped: {special.why}")
        frame = frame[frame.index >= first]
    elif special.why:
        notes.append(special.why)
    frame, repaired = repair_bad_prints(ticker, frame)
    if repaired:
        notes.append(
            f"{len(repaired)} bad print(s) repaired (see BAD_PRINTS in the build script): "
            + ", ".join(repaired)
        )
    split_dates = factor_split_dates(factors, frame.index)
    split_dates += [pd.Timestamp(d) for d in KNOWN_SPLITS.get(ticker, ())]
    checked = check_splits(ticker, frame, split_dates)
    notes.append(
        "prices x1/10000, adjusted with the Lean factor file (price x price_factor x split_factor, "
        f"volume / split_factor); {checked} split date(s) checked for leftover jumps"
    )
    notes += _quality_notes(frame)
    rel = [str(p.relative_to(raw_dir)) for p in sources]
    rel.append(str(_lean_path(raw_dir, "factor_files", ticker).relative_to(raw_dir)))
    rel.append(str(_lean_path(raw_dir, "map_files", ticker).relative_to(raw_dir)))
    return Dataset(
        symbol=ticker,
        frame=frame,
        source=" + ".join(rel) + f" ({LEAN_UPSTREAM})",
        licence="Apache-2.0",
        adjusted="split+dividend",
        notes="; ".join(notes),
    )


# --- indices ---------------------------------------------------------------------------------


def build_arch_index(raw_dir: Path, name: str, symbol: str) -> Dataset:
    """One of arch's Yahoo-layout index files (dates M/D/YYYY; Adj Close equals Close)."""
    path = raw_dir / "pypi-arch" / f"{name}.csv.gz"
    raw = pd.read_csv(path, dtype={"Date": str})
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("Date"), format="%m/%d/%Y"), name="date")
    if not np.allclose(raw["Adj Close"], raw["Close"], rtol=1e-12, atol=0.0):
        raise DataError(f"{path}: Adj Close differs from Close; an index should need no adjustment")
    frame = raw.rename(columns=str.lower)[list(BAR_COLUMNS)].astype("float64")
    notes = ["Yahoo layout; Adj Close (equal to Close) dropped", *_quality_notes(frame)]
    return Dataset(
        symbol=symbol,
        frame=frame,
        source=f"pypi-arch/{name}.csv.gz ({ARCH_UPSTREAM})",
        licence="NCSA",
        adjusted="none (index)",
        notes="; ".join(notes),
    )


VIX_ABSURD_OPEN = 0.5
"""A VIX open further than this (log) outside its day's [low, high] is a bad print (e.g. 2.58 on a
13.7-14.5 day): it is replaced by the previous close instead of stretching the range to it."""


def build_vix(raw_dir: Path) -> Dataset:
    """CBOE VIX daily; no volume (0.0); high/low widened to contain open and close."""
    path = raw_dir / "datahub-finance-vix" / "vix-daily.csv"
    raw = pd.read_csv(path, dtype={"DATE": str})
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("DATE"), format="%Y-%m-%d"), name="date")
    frame = raw.rename(columns=str.lower).astype("float64")
    outside = np.log(np.maximum(frame["open"] / frame["high"], frame["low"] / frame["open"]))
    absurd = outside > VIX_ABSURD_OPEN
    prev_close = frame["close"].shift(1)
    frame.loc[absurd, "open"] = prev_close[absurd].clip(frame["low"][absurd], frame["high"][absurd])
    body_high = frame[["open", "close"]].max(axis=1)
    body_low = frame[["open", "close"]].min(axis=1)
    widened = (frame["high"] < body_high) | (frame["low"] > body_low)
    frame["high"] = np.maximum(frame["high"], body_high)
    frame["low"] = np.minimum(frame["low"], body_low)
    frame["volume"] = 0.0
    days = ", ".join(d.date().isoformat() for d in frame.index[absurd])
    notes = [
        f"{int(widened.sum() + absurd.sum())} rows with high/low not containing open/close: "
        f"{int(widened.sum())} widened to max/min(open, close); {int(absurd.sum())} with an open "
        f"more than {VIX_ABSURD_OPEN} log outside the range ({days}) set to the previous close",
        "no volume in the source: volume 0.0",
        *_quality_notes(frame, volume=False),
    ]
    return Dataset(
        symbol="VIX",
        frame=frame,
        source=f"datahub-finance-vix/vix-daily.csv ({VIX_UPSTREAM})",
        licence="ODC-PDDL-1.0",
        adjusted="none (index)",
        notes="; ".join(notes),
    )


# --- shared checks and writing ---------------------------------------------------------------


def _quality_notes(frame: pd.DataFrame, volume: bool = True) -> list[str]:
    """Oddities kept as they are (not errors), so users know they are there."""
    notes = []
    flat = (frame["open"] == frame["high"]) & (frame["high"] == frame["low"])
    flat &= frame["low"] == frame["close"]
    if flat.any():
        notes.append(f"{int(flat.sum())} close-only rows (O=H=L=C) kept")
    if volume and (frame["volume"] == 0).any():
        days = frame.index[frame["volume"] == 0]
        listed = ", ".join(d.date().isoformat() for d in days[:5])
        notes.append(f"{len(days)} zero-volume day(s) kept ({listed})")
    gaps = frame.index.to_series().diff().dt.days
    if (gaps > 7).any():
        worst = gaps.idxmax()
        notes.append(
            f"{int((gaps > 7).sum())} calendar gap(s) > 7 days (largest {int(gaps.max())} days "
            f"before {worst.date()})"
        )
    return notes


def to_table(frame: pd.DataFrame) -> pa.Table:
    """Explicit arrow table (date as timestamp[us], float64 bars), without pandas metadata."""
    columns: dict[str, pa.Array] = {
        "date": pa.array(frame.index.to_numpy().astype("datetime64[us]"), type=pa.timestamp("us"))
    }
    for col in BAR_COLUMNS:
        columns[col] = pa.array(frame[col].to_numpy(dtype="float64"), type=pa.float64())
    return pa.table(columns)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Serialise bars deterministically (same frame, same library versions: same bytes).

    Adjusted prices are full-precision floats that compress best with byte-stream-split; index
    levels quoted to two decimals compress best with dictionaries. Both are tried; the smaller wins.
    """
    table = to_table(frame)
    candidates = []
    for split in (True, False):
        buffer = io.BytesIO()
        pq.write_table(
            table,
            buffer,
            compression="zstd",
            compression_level=19,
            use_dictionary=not split,
            use_byte_stream_split=list(BAR_COLUMNS) if split else False,
            write_statistics=True,
            store_schema=False,
        )
        candidates.append(buffer.getvalue())
    return min(candidates, key=len)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_dataset(dataset: Dataset, out: Path) -> dict[str, str]:
    """Validate, write one parquet file and return its manifest row."""
    frame, report = validate_bars(dataset.frame, source=f"build:{dataset.symbol}")
    notes = dataset.notes
    if report.notes:
        notes += "; validation: " + "; ".join(report.notes)
    gaps = split_suspects(frame)
    if gaps:
        listed = ", ".join(d.date().isoformat() for d in gaps)
        notes += f"; overnight gaps > {SPLIT_LIKE_MOVE} log kept as real (no split then): {listed}"
    name = f"{dataset.symbol.lower()}.parquet"
    (out / name).write_bytes(parquet_bytes(frame))
    return {
        "file": name,
        "symbol": dataset.symbol,
        "first_date": frame.index[0].date().isoformat(),
        "last_date": frame.index[-1].date().isoformat(),
        "rows": str(len(frame)),
        "sha256": sha256_of(out / name),
        "source": dataset.source,
        "licence": dataset.licence,
        "adjusted": dataset.adjusted,
        "notes": notes,
    }


def write_manifest(rows: list[dict[str, str]], out: Path) -> None:
    with (out / "MANIFEST.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


README_HEAD = """\
# Bundled market data

Real daily bars shipped with market_metarl, so the toolkit works offline and the tests run
anywhere. Load them with `bundled:SYMBOL` (e.g. `bundled:SPY`) or
`market_metarl.data.bundled.load_bundled("SPY")`; every load checks the file's sha256 against
`MANIFEST.csv`.

Each `<symbol>.parquet` holds the canonical bars: a `date` column (timestamp) and float64 columns
`open high low close volume`. `MANIFEST.csv` lists, per file: symbol, date range, rows, sha256,
the raw source (path and upstream repository/commit), licence, adjustment and every cleaning step.

| symbol | first | last | rows | licence | adjusted |
|---|---|---|---|---|---|
"""

README_TAIL = """
## Sources and licences

- **QuantConnect Lean sample equity data** (AAPL AIG BAC BNO EEM FB GOOG GOOGL IBM IWM QQQ SPY USO),
  from github.com/QuantConnect/Lean (commit 24863901), `Data/equity/usa/{daily,factor_files,
  map_files}`. Copyright QuantConnect Corporation, licensed under the Apache License 2.0
  (https://www.apache.org/licenses/LICENSE-2.0). Modified: prices converted from 1/10000 dollar
  units and split- and dividend-adjusted with Lean's factor files; rows of earlier securities that
  used the same ticker removed; GOOGL's 2004-2014 history taken from Lean's GOOG file as its map
  file says; a few reviewed bad prints repaired (listed per file in the notes column of
  `MANIFEST.csv`).
- **S&P 500 (SP500) and NASDAQ Composite (NASDAQ) indices**, from the `arch` Python package 8.0.0
  (`arch/data/sp500`, `arch/data/nasdaq`; data originally from Yahoo Finance), under the
  University of Illinois/NCSA Open Source License, reproduced below.
- **CBOE Volatility Index (VIX)**, from github.com/datasets/finance-vix (commit 6f56e276),
  `data/vix-daily.csv`, Open Data Commons Public Domain Dedication and License (ODC-PDDL-1.0);
  source CBOE.

Prices of the Lean equities are split- and dividend-adjusted as of 2021-03-31 (the end of the
data), so the last close of each equals the traded close. Indices need no adjustment.

## Rebuilding

`make data` runs `scripts/build_bundled_data.py --raw ../shared/data/raw --out data`. The build is
deterministic (same raw files and library versions give the same bytes), validates every frame, and
fails if any split still shows a jump after adjustment. Set `MARKET_METARL_DATA` to read bundled
data from another directory.

## arch licence (NCSA)

> Copyright (c) 2014 Kevin Sheppard. All rights reserved.
>
> Developed by: Kevin Sheppard (<kevin.sheppard@economics.ox.ac.uk>, <kevin.k.sheppard@gmail.com>)
> http://www.kevinsheppard.com
>
> Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
> associated documentation files (the "Software"), to deal with the Software without restriction,
> including without limitation the rights to use, copy, modify, merge, publish, distribute,
> sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
> furnished to do so, subject to the following conditions:
>
> Redistributions of source code must retain the above copyright notice, this list of conditions
> and the following disclaimers.
>
> Redistributions in binary form must reproduce the above copyright notice, this list of conditions
> and the following disclaimers in the documentation and/or other materials provided with the
> distribution.
>
> Neither the names of Kevin Sheppard, nor the names of its contributors may be used to endorse or
> promote products derived from this Software without specific prior written permission.
>
> THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
> NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
> NONINFRINGEMENT. IN NO EVENT SHALL THE CONTRIBUTORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
> DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
> OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS WITH THE SOFTWARE.
"""


def write_readme(rows: list[dict[str, str]], out: Path) -> None:
    lines = [
        f"| {r['symbol']} | {r['first_date']} | {r['last_date']} | {r['rows']} | "
        f"{r['licence']} | {r['adjusted']} |"
        for r in rows
    ]
    (out / "README.md").write_text(
        README_HEAD + "\n".join(lines) + "\n" + README_TAIL, encoding="utf-8"
    )


def builders(raw_dir: Path) -> list[Callable[[], Dataset]]:
    """One thunk per shipped symbol, in manifest order."""
    out: list[Callable[[], Dataset]] = [partial(build_lean, raw_dir, t) for t in LEAN_TICKERS]
    out.append(partial(build_arch_index, raw_dir, "sp500", "SP500"))
    out.append(partial(build_arch_index, raw_dir, "nasdaq", "NASDAQ"))
    out.append(partial(build_vix, raw_dir))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("../shared/data/raw"), help="raw data dir")
    parser.add_argument("--out", type=Path, default=Path("data"), help="output dir")
    args = parser.parse_args(argv)
    raw_dir: Path = args.raw.resolve()
    if not (raw_dir / LEAN_DIR).is_dir():
        print(f"error: {raw_dir} does not hold the raw data (no {LEAN_DIR})", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for build in builders(raw_dir):
        row = write_dataset(build(), out)
        span = f"{row['first_date']} .. {row['last_date']}"
        print(f"{row['file']:>14}  {span}  {row['rows']:>5} rows")
        rows.append(row)
    write_manifest(rows, out)
    write_readme(rows, out)
    total = sum((out / r["file"]).stat().st_size for r in rows)
    print(f"wrote {len(rows)} files, {total / 1e6:.2f} MB, manifest and README to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
