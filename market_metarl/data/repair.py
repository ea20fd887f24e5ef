"""Bad rows of a bars frame, and the policy that refuses them or drops the isolated ones.

A *bad row* is a dated bar with at least one bad cell, found in this order:

* ``non-numeric``: a cell that is not a number (``n/a``, ``1,234``);
* ``missing``: an empty or NaN cell (any spelling pandas or Python reads as NaN);
* ``non-finite``: ``inf``, ``-inf``, ``Infinity``, or a number too large for a float (``1e400``);
* ``non-positive``: an open, high, low or close ``<= 0`` (``1e-400`` reads as 0);
* ``negative-volume``: a volume ``< 0``;
* ``high-low``: ``high < low``;
* ``close-range``: a close outside ``[low, high]``.

The last two are checked only on rows whose four prices are finite and positive, so no arithmetic
ever touches an ``inf`` (no numpy warning leaks). An open outside ``[low, high]`` is not bad: the
validator widens the range (:mod:`market_metarl.data.bars`).

The policy (``[data] repair`` in a config, ``?repair=`` on a csv source):

* ``refuse`` (the default): any bad row refuses the whole file.
* ``drop``: the bad rows are dropped when they are *isolated*: at most ``max_rows`` of them in
  the file (``[data] repair_max_rows``, default 3) and no two adjacent, where adjacent means
  consecutive rows of the file in date order (no good row between them). Anything else still
  refuses the file; the message says how many bad rows there are, where, and why ``drop`` does not
  apply. A refusal of isolated rows under ``refuse`` says that ``drop`` would take them.

A dropped day does not exist for any layer: every layer loads bars through the same source spec
(which carries the policy), so features, the env, the backtest and the live feed all step from the
day before straight to the day after; the next open's gap is measured from the last good close.
Nothing is filled in, least of all from a later bar, so dropping creates no lookahead.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_metarl.types import BAR_COLUMNS, DataError

REPAIR_MODES: tuple[str, ...] = ("refuse", "drop")
"""Valid values of ``[data] repair`` and of a csv source's ``?repair=`` option."""
DEFAULT_MAX_ROWS = 3
"""Default ``repair_max_rows``: the most bad rows a file may have and still be repaired."""

CHECKS: dict[str, tuple[str, str]] = {
    "non-numeric": ("non-numeric value", "fix those cells"),
    "missing": ("missing values (NaN)", "fill or delete those rows"),
    "non-finite": ("non-finite value", "correct or delete those rows"),
    "non-positive": ("non-positive price", "prices must be > 0, delete or correct those rows"),
    "negative-volume": ("negative volume", "volume must be >= 0"),
    "high-low": ("high < low", "check the column order (open, high, low, close)"),
    "close-range": ("close outside [low, high]", "correct those bars"),
}
"""Each check's name, in the order they run: how messages call it, and how to fix it."""


@dataclass(frozen=True)
class RepairPolicy:
    """What to do with bad rows: ``refuse`` the file, or ``drop`` isolated bad rows.

    Attributes:
        mode: ``refuse`` or ``drop``.
        max_rows: Under ``drop``, the most bad rows a file may have (none adjacent).
    """

    mode: str = "refuse"
    max_rows: int = DEFAULT_MAX_ROWS

    def __post_init__(self) -> None:
        """Reject an unknown mode or a maximum below 1."""
        if self.mode not in REPAIR_MODES:
            raise DataError(f"repair must be one of {', '.join(REPAIR_MODES)}, got {self.mode!r}")
        if self.max_rows < 1:
            raise DataError(f"repair_max_rows must be >= 1, got {self.max_rows}")

    def options(self) -> tuple[tuple[str, str], ...]:
        """The source-spec options that carry this policy (none for ``refuse``, the default)."""
        if self.mode == "refuse":
            return ()
        return (("repair", self.mode), ("repair_max_rows", str(self.max_rows)))

    @classmethod
    def from_options(cls, options: Mapping[str, str], where: str) -> RepairPolicy:
        """The policy named by a source spec's ``repair`` and ``repair_max_rows`` options.

        Raises:
            DataError: An unknown mode or a maximum that is not an integer >= 1, naming ``where``.
        """
        text = options.get("repair_max_rows", str(DEFAULT_MAX_ROWS))
        try:
            return cls(options.get("repair", "refuse"), int(text))
        except ValueError as exc:
            detail = exc if isinstance(exc, DataError) else f"repair_max_rows={text!r}"
            raise DataError(f"{where}: {detail}; e.g. ?repair=drop&repair_max_rows=3") from None


@dataclass(frozen=True)
class Repair:
    """One bad cell of a dropped row: where it was, what it held, and what was wrong."""

    source: str
    date: str
    column: str
    value: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """As written to a run's ``data_repairs.json``."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BadCell:
    """A bad cell: its row position in the date-sorted frame, column, value and check."""

    row: int
    column: str
    value: str
    check: str
    detail: str = ""

    @property
    def reason(self) -> str:
        """The check's name as messages write it, with the detail (``high < low, low = 2``)."""
        label = CHECKS[self.check][0]
        return f"{label}, {self.detail}" if self.detail else label


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def bad_cells(values: np.ndarray, text: np.ndarray) -> list[BadCell]:
    """Every bad cell of a bars table, check by check in :data:`CHECKS` order.

    Args:
        values: ``(rows, 5)`` float64 array of ``open high low close volume`` (NaN where not a
            number).
        text: ``(rows, 5)`` object array: the original text of each non-numeric cell, ``""``
            elsewhere.
    """
    nonnum = np.asarray(text != "", dtype=bool)
    finite = np.isfinite(values)
    price = np.zeros_like(finite)
    price[:, :4] = True
    masks = {
        "non-numeric": nonnum,
        "missing": np.isnan(values) & ~nonnum,
        "non-finite": np.isinf(values),
        "non-positive": finite & price & (np.where(finite, values, 1.0) <= 0),
        "negative-volume": finite & ~price & (np.where(finite, values, 0.0) < 0),
    }
    cells = []
    for check, mask in masks.items():
        for row, col in np.argwhere(mask):
            value = repr(str(text[row, col])) if check == "non-numeric" else _fmt(values[row, col])
            cells.append(BadCell(int(row), BAR_COLUMNS[col], value, check))
    return cells + _inconsistent(values)


def _inconsistent(values: np.ndarray) -> list[BadCell]:
    """``high < low`` and close outside ``[low, high]``, on rows of finite, positive prices."""
    prices = values[:, :4]
    usable = (np.isfinite(prices) & (np.where(np.isfinite(prices), prices, 1.0) > 0)).all(axis=1)
    _, h, lo, c = np.where(usable[:, None], prices, 1.0).T
    tol = 1e-9 * np.maximum(h, 1.0)
    high_low = usable & (h < lo - tol)
    close_out = usable & ~high_low & ((c > h + tol) | (c < lo - tol))
    cells = [
        BadCell(int(i), "high", _fmt(h[i]), "high-low", f"low = {_fmt(lo[i])}")
        for i in np.flatnonzero(high_low)
    ]
    cells += [
        BadCell(
            int(i), "close", _fmt(c[i]), "close-range", f"low = {_fmt(lo[i])}, high = {_fmt(h[i])}"
        )
        for i in np.flatnonzero(close_out)
    ]
    return cells


def apply_policy(
    frame: pd.DataFrame, cells: list[BadCell], policy: RepairPolicy, source: str
) -> tuple[pd.DataFrame, list[Repair]]:
    """Drop the bad rows of ``frame`` if the policy allows it, else refuse the file.

    Args:
        frame: Date-sorted bars whose row positions ``cells`` refer to.
        cells: The bad cells (:func:`bad_cells`).
        policy: The repair policy.
        source: Name used in messages and records.

    Returns:
        The frame without the bad rows, and one :class:`Repair` per bad cell dropped, in date
        order.

    Raises:
        DataError: There are bad rows, and the policy is ``refuse`` or they are not isolated.
    """
    if not cells:
        return frame, []
    rows = sorted({c.row for c in cells})
    why_not = _not_isolated(frame, rows, policy.max_rows)
    if policy.mode != "drop" or why_not:
        raise DataError(_refusal(frame, cells, rows, why_not, source))
    dates = _dates(frame)
    by_date = sorted(cells, key=lambda c: c.row)  # stable: check order within a row
    repairs = [Repair(source, dates[c.row], c.column, c.value, c.reason) for c in by_date]
    keep = np.ones(len(frame), dtype=bool)
    keep[rows] = False
    return frame.iloc[keep], repairs


def drop_warnings(repairs: list[Repair]) -> list[str]:
    """One report warning per dropped row, naming its bad cells."""
    out = []
    for date, group in itertools.groupby(repairs, key=lambda r: r.date):
        cells = ", ".join(f"{r.column} = {r.value} ({r.reason})" for r in group)
        out.append(
            f"dropped the bar of {date}: {cells}; repair = drop removes this isolated bad row, "
            "so that day is absent for every layer (nothing is filled in)"
        )
    return out


def _dates(frame: pd.DataFrame) -> list[str]:
    return [d.date().isoformat() for d in frame.index]


def _not_isolated(frame: pd.DataFrame, rows: list[int], max_rows: int) -> str:
    """Why ``rows`` are not isolated (too many, or two adjacent), or ``""`` when they are."""
    if len(rows) > max_rows:
        return f"{len(rows)} bad rows, more than repair_max_rows = {max_rows}"
    for a, b in itertools.pairwise(rows):
        if b == a + 1:
            dates = _dates(frame)
            return f"the bad rows of {dates[a]} and {dates[b]} are adjacent"
    return ""


def _refusal(
    frame: pd.DataFrame, cells: list[BadCell], rows: list[int], why_not: str, source: str
) -> str:
    """The one-line message that refuses a file: the first check's rows, all rows, and repair."""
    label, fix = CHECKS[cells[0].check]
    group = [c for c in cells if c.check == cells[0].check]
    message = f"{source}: {label} on {_where(frame, group)}; {fix}"
    if len(rows) > len({c.row for c in group}):
        message += f"; {len(rows)} bad rows in all, on {_where(frame, cells)}"
    if why_not:
        return message + f'; repair = "drop" would not apply: {why_not}'
    n, it = (
        ("this bad row is", "it") if len(rows) == 1 else (f"these {len(rows)} bad rows are", "them")
    )
    return (
        message + f'; {n} isolated: [data] repair = "drop" (or ?repair=drop on a csv source) '
        f"would drop {it}"
    )


def _where(frame: pd.DataFrame, cells: list[BadCell], limit: int = 3) -> str:
    """``DATE (column c = v, ...)`` for the first ``limit`` rows of ``cells``, then a count."""
    dates = _dates(frame)
    by_row: dict[int, list[BadCell]] = {}
    for cell in cells:
        by_row.setdefault(cell.row, []).append(cell)
    parts = []
    for row in sorted(by_row)[:limit]:
        group = by_row[row]
        noun = "column" if len(group) == 1 else "columns"
        cells_text = ", ".join(
            f"{c.column} = {c.value}" + (f" ({c.detail})" if c.detail else "") for c in group
        )
        parts.append(f"{dates[row]} ({noun} {cells_text})")
    more = len(by_row) - len(parts)
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")
