"""The real market data shipped in the repository's ``data/`` directory (the offline default).

Each symbol is one parquet file (a ``date`` column and float64 ``open high low close volume``),
listed in ``data/MANIFEST.csv`` with its date range, row count, sha256, source, licence and the
cleaning done. Every load checks the file's sha256 against the manifest and runs
:func:`~market_metarl.data.bars.validate_bars`, so a damaged file fails loudly instead of feeding a
backtest bad bars. ``scripts/build_bundled_data.py`` (``make data``) rebuilds the directory.

The directory is ``$MARKET_METARL_DATA`` when that variable is set, else :data:`DATA_DIR`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from market_metarl.data.bars import BarsReport, validate_bars
from market_metarl.data.paths import DATA_DIR_ENV, data_dir
from market_metarl.types import BAR_COLUMNS, DataError

MANIFEST_NAME = "MANIFEST.csv"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "file",
    "symbol",
    "first_date",
    "last_date",
    "rows",
    "sha256",
    "source",
    "licence",
    "adjusted",
    "notes",
)
REBUILD_HINT = "run `make data` to rebuild it (or restore data/ from git)"


def read_manifest() -> pd.DataFrame:
    """Read ``MANIFEST.csv`` of the bundled data directory.

    Returns:
        One row per shipped file with the columns of :data:`MANIFEST_COLUMNS` (``rows`` as int,
        the rest as strings), in manifest order.

    Raises:
        DataError: If the manifest is missing, unreadable or lacks a column.
    """
    path = data_dir() / MANIFEST_NAME
    if not path.is_file():
        raise DataError(
            f"no bundled data manifest at {path}; {REBUILD_HINT}, or set {DATA_DIR_ENV} to a "
            "directory that holds MANIFEST.csv"
        )
    try:
        manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc}); {REBUILD_HINT}") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; {REBUILD_HINT}")
    manifest = manifest[list(MANIFEST_COLUMNS)].copy()
    manifest["rows"] = pd.to_numeric(manifest["rows"], errors="raise").astype("int64")
    return manifest


def bundled_symbols() -> list[str]:
    """Symbols shipped in the bundled data directory, in manifest order (upper case)."""
    return [str(s).upper() for s in read_manifest()["symbol"]]


def _manifest_row(symbol: str) -> pd.Series:
    manifest = read_manifest()
    wanted = symbol.strip().upper()
    hits = manifest[manifest["symbol"].str.upper() == wanted]
    if hits.empty:
        available = ", ".join(str(s).upper() for s in manifest["symbol"])
        raise DataError(
            f"no bundled data for symbol {symbol!r}; available: {available} "
            "(or use csv:PATH or yfinance:SYMBOL)"
        )
    return hits.iloc[0]


def _verified_bytes(path: Path, expected_sha256: str) -> bytes:
    if not path.is_file():
        raise DataError(f"bundled file {path} is missing; {REBUILD_HINT}")
    payload = path.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256.strip().lower():
        raise DataError(
            f"bundled file {path} is corrupt: sha256 {actual[:12]}... does not match the manifest "
            f"({expected_sha256[:12]}...); {REBUILD_HINT}"
        )
    return payload


def _frame_from_parquet(payload: bytes, source: str) -> pd.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(payload))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{source}: unreadable parquet ({exc}); {REBUILD_HINT}") from None
    expected = ["date", *BAR_COLUMNS]
    if table.column_names != expected:
        raise DataError(
            f"{source}: columns {table.column_names}, expected {expected}; {REBUILD_HINT}"
        )
    frame = table.to_pandas()
    frame.index = pd.DatetimeIndex(frame.pop("date"), name="date")
    return frame


def load_bundled(symbol: str) -> tuple[pd.DataFrame, BarsReport]:
    """Load one bundled symbol as validated bars.

    Args:
        symbol: A symbol from :func:`bundled_symbols`, case-insensitive (``"spy"`` is ``SPY``).

    Returns:
        The bars (tz-naive ``DatetimeIndex`` named ``date``, float64 ``open high low close
        volume``) and the validation report, whose ``source`` is ``bundled:SYMBOL``.

    Raises:
        DataError: If the symbol is not bundled (the message lists those that are), the file is
            missing or its sha256 differs from the manifest (corrupt: run ``make data``), or its
            row count or contents do not match the manifest.
    """
    row = _manifest_row(symbol)
    source = f"bundled:{str(row['symbol']).upper()}"
    path = data_dir() / str(row["file"])
    frame = _frame_from_parquet(_verified_bytes(path, str(row["sha256"])), source)
    bars, report = validate_bars(frame, source=source)
    if len(bars) != int(row["rows"]):
        raise DataError(
            f"{source}: {len(bars)} rows but the manifest says {row['rows']}; {REBUILD_HINT}"
        )
    return bars, report
