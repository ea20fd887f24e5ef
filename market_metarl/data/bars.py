"""The canonical bars frame and its validation.

Bars: a pandas DataFrame with a tz-naive ``DatetimeIndex`` named ``date`` (sorted, unique) and float
columns ``open high low close volume``. Every loader ends in :func:`validate_bars`, so every layer
above can rely on the contract. A problem raises :class:`DataError` that says what is wrong, where
(row or date) and how to fix it; a fixable oddity (unsorted rows) is fixed and reported in the notes.
Bad rows (NaN, inf, non-positive or inconsistent prices...) refuse the file, unless a
:class:`~market_metarl.data.repair.RepairPolicy` of ``drop`` removes isolated ones (see
:mod:`market_metarl.data.repair` for what counts as bad and as isolated, and why dropping a day
creates no lookahead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.data.repair import (
    Repair,
    RepairPolicy,
    apply_policy,
    bad_cells,
    drop_warnings,
)
from market_metarl.types import BAR_COLUMNS, DataError

SPLIT_LIKE_MOVE = 0.35
"""An overnight move larger than this (in log terms, about -30 % / +42 %) that is not undone within
five days looks like an unadjusted split and is reported."""


@dataclass
class BarsReport:
    """What validation found. ``notes`` are harmless fixes; ``warnings`` deserve a look.

    ``repairs`` lists each bad cell of the rows a ``drop`` repair policy removed (one warning per
    dropped row says the same in words).
    """

    source: str
    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)


def _where(frame: pd.DataFrame, mask: Any, limit: int = 3) -> str:
    """The first ``limit`` dates where ``mask`` holds (ISO), plus how many more, for messages."""
    mask = np.asarray(mask, dtype=bool)
    dates = [d.date().isoformat() for d in frame.index[mask][:limit]]
    more = int(mask.sum()) - len(dates)
    return ", ".join(dates) + (f" and {more} more" if more > 0 else "")


def validate_bars(
    frame: pd.DataFrame,
    source: str = "bars",
    min_rows: int = 2,
    repair: RepairPolicy | None = None,
) -> tuple[pd.DataFrame, BarsReport]:
    """Check a bars frame against the contract and return a clean copy plus a report.

    Args:
        frame: Frame indexed by date with at least the columns ``open high low close`` (``volume``
            is filled with NaN-free zeros when absent, e.g. for an index without volume).
        source: Name used in messages (a file path or source spec).
        min_rows: Fewest rows accepted (counted after any dropped rows).
        repair: What to do with bad rows (:class:`~market_metarl.data.repair.RepairPolicy`;
            default: refuse the file).

    Returns:
        The validated frame (float64 columns in canonical order, sorted index named ``date``) and a
        :class:`BarsReport`.

    Raises:
        DataError: On missing columns, bad dates, duplicate dates, too few rows, or bad rows
            (non-numeric, NaN or non-finite values, non-positive prices, negative volume,
            ``high < low``, ``close`` outside ``[low, high]``) that the repair policy does not
            drop; the message names each bad row's date and column.
    """
    report = BarsReport(source=source)
    if frame is None or len(frame) == 0:
        raise DataError(f"{source}: no rows; give a file or symbol with daily bars")
    df = _canonical_columns(frame, source, report)
    df = _date_index(df, source, report)
    df, text = _numeric_sorted_unique(df, source, report)
    df = _check_prices(df, text, source, report, repair or RepairPolicy())
    if len(df) < min_rows:
        raise DataError(
            f"{source}: {len(df)} row(s), at least {min_rows} needed; use a longer date range"
        )
    suspects = split_suspects(df)
    if suspects:
        report.warnings.append(
            "one-day moves that look like unadjusted splits on "
            + ", ".join(d.date().isoformat() for d in suspects)
            + "; use split-adjusted prices (e.g. Yahoo's Adj Close) if these are not real"
        )
    report.rows = len(df)
    report.first, report.last = df.index[0], df.index[-1]
    return df, report


def _canonical_columns(frame: pd.DataFrame, source: str, report: BarsReport) -> pd.DataFrame:
    """A copy with lower-case ``open high low close volume`` only (volume 0 when absent)."""
    df = frame.copy()
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} (found {', '.join(df.columns)}); "
            "bars need open, high, low, close and optionally volume"
        )
    if "volume" not in df.columns:
        df["volume"] = 0.0
        report.notes.append("no volume column: volume set to 0")
    return df[list(BAR_COLUMNS)]


def _date_index(df: pd.DataFrame, source: str, report: BarsReport) -> pd.DataFrame:
    """``df`` on a tz-naive, midnight-normalised ``DatetimeIndex`` named ``date`` (in place)."""
    if not isinstance(df.index, pd.DatetimeIndex):
        try:
            df.index = pd.DatetimeIndex(pd.to_datetime(df.index))
        except (ValueError, TypeError) as exc:
            raise DataError(f"{source}: the index is not made of dates ({exc})") from None
    if df.index.tz is not None:
        df.index = df.index.tz_convert("UTC").tz_localize(None)
        report.notes.append("timezone-aware dates converted to naive UTC dates")
    if df.index.hasnans:
        bad = np.flatnonzero(df.index.isna())[:3]
        raise DataError(
            f"{source}: unparseable or empty date at data row(s) {', '.join(str(i + 1) for i in bad)}; "
            "fix or delete those rows"
        )
    df.index = df.index.normalize()
    df.index.name = "date"
    return df


def _numeric_sorted_unique(
    df: pd.DataFrame, source: str, report: BarsReport
) -> tuple[pd.DataFrame, np.ndarray]:
    """float64 columns, rows sorted by date (duplicate dates raise), and the non-numeric cells.

    A cell pandas cannot read as a number is tried with Python's ``float`` (which reads ``NAN``,
    ``Infinity`` and ``1e400``); one neither can read becomes NaN, and its text is returned in
    the second value (``""`` elsewhere) for :func:`~market_metarl.data.repair.bad_cells` to name.
    """
    text = np.full(df.shape, "", dtype=object)
    for j, col in enumerate(BAR_COLUMNS):
        converted = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype="float64", copy=True)
        for i in np.flatnonzero(np.isnan(converted) & df[col].notna().to_numpy()):
            cell = df[col].iloc[i]
            try:
                converted[i] = float(str(cell).strip())
            except ValueError:
                text[i, j] = str(cell)
        df[col] = converted
    if not df.index.is_monotonic_increasing:
        order = np.argsort(df.index.to_numpy(), kind="stable")
        df, text = df.iloc[order].copy(), text[order]
        report.notes.append("rows were not in date order: sorted by date")
    dup = df.index.duplicated(keep=False)
    if dup.any():
        raise DataError(f"{source}: duplicate dates {_where(df, dup)}; keep one row per date")
    return df, text


def _check_prices(
    df: pd.DataFrame, text: np.ndarray, source: str, report: BarsReport, repair: RepairPolicy
) -> pd.DataFrame:
    """Refuse or drop the bad rows (:mod:`~market_metarl.data.repair`), then widen odd opens.

    Returns the frame without dropped rows (recorded in ``report.repairs`` and its warnings);
    widens ``[low, high]`` to cover an open outside it (a vendor quirk seen in real data), with a
    note in ``report``.
    """
    cells = bad_cells(df.to_numpy(dtype="float64"), text)
    df, repairs = apply_policy(df, cells, repair, source)
    if repairs:
        df = df.copy()
        report.repairs.extend(repairs)
        report.warnings.extend(drop_warnings(repairs))
    o, h, lo = (df[c].to_numpy() for c in ("open", "high", "low"))
    tol = 1e-9 * np.maximum(h, 1.0)
    o_out = (o > h + tol) | (o < lo - tol)
    if o_out.any():
        # Real vendor data has a few of these (e.g. Yahoo SPY 2015-03-05); widen the range.
        df.loc[o_out, "high"] = np.maximum(h[o_out], o[o_out])
        df.loc[o_out, "low"] = np.minimum(lo[o_out], o[o_out])
        report.notes.append(f"open outside [low, high] on {_where(df, o_out)}: range widened")
    return df


def split_suspects(df: pd.DataFrame, threshold: float = SPLIT_LIKE_MOVE) -> list[pd.Timestamp]:
    """Dates whose overnight gap exceeds ``threshold`` in log terms and is not undone in 5 days."""
    close = df["close"].to_numpy()
    if len(close) < 2:
        return []
    out = []
    # validated bars are finite and positive, but a ratio of extreme ones may overflow to inf or
    # underflow to 0 (log: -inf), which only makes a move look large: no information in a warning
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        gap = np.log(df["open"].to_numpy()[1:] / close[:-1])
        for i in np.flatnonzero(np.abs(gap) > threshold):
            later = close[i + 1 : i + 7]
            recovered = np.abs(np.log(later / close[i])) < threshold / 2
            if not recovered.any():
                out.append(pd.Timestamp(df.index[int(i) + 1]))
    return out
