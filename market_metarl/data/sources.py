"""Source specs: the strings users type to name market data.

``bundled:SPY`` (shipped in ``data/``), ``csv:path/to/file.csv`` (relative to the current working
directory; options ``?symbol=AAPL`` for one symbol of a long file, ``?name=SPY_STOOQ`` to name the
asset, ``?repair=drop&repair_max_rows=3`` to drop isolated bad rows, see
:mod:`market_metarl.data.repair`),
``yfinance:SPY`` (downloaded and cached; ``?offline=1`` reads the cache only) and
``synthetic:NAME?key=value`` (``synthetic:ar-regimes?seed=3``, ``synthetic:gbm?seed=1&days=500``).
Kinds resolve through a closed registry; an unknown kind is an error that lists the valid ones.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pandas as pd

from market_metarl.data.bars import BarsReport, validate_bars
from market_metarl.types import ConfigError, DataError, TaskSpec


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source spec: ``kind:target?key=value&...``."""

    kind: str
    target: str
    options: tuple[tuple[str, str], ...] = field(default=())

    @property
    def text(self) -> str:
        """The spec written back as a string (``kind:target?k=v&...``), options in their given order."""
        query = "&".join(f"{k}={v}" for k, v in self.options)
        return f"{self.kind}:{self.target}" + (f"?{query}" if query else "")

    def option(self, key: str, default: str | None = None) -> str | None:
        """The value of query option ``key`` (``synthetic:ar-regimes?seed=3`` has ``seed``), or ``default``."""
        return dict(self.options).get(key, default)


def parse_source(text: str) -> SourceSpec:
    """Parse ``kind:target?query``; raise DataError on a malformed or unknown spec."""
    if ":" not in text:
        raise DataError(
            f"source {text!r} has no kind; write it as one of "
            + ", ".join(f"{k}:{example}" for k, example in _EXAMPLES.items())
        )
    kind, rest = text.split(":", 1)
    kind = kind.strip().lower()
    if kind not in _LOADERS:
        raise DataError(
            f"unknown source kind {kind!r} in {text!r}; valid kinds: {', '.join(_LOADERS)}"
        )
    target, _, query = rest.partition("?")
    if not target.strip():
        raise DataError(
            f"source {text!r} names nothing after '{kind}:'; e.g. {kind}:{_EXAMPLES[kind]}"
        )
    options = tuple(parse_qsl(query, keep_blank_values=True)) if query else ()
    return SourceSpec(kind, target.strip(), options)


def load_bars_with_report(text: str) -> tuple[pd.DataFrame, BarsReport]:
    """Load the bars a source spec names, with the validation report.

    Bundled and synthetic sources never change within a process, so they are read once and
    served as copies afterwards (building hundreds of tasks reads each file once).
    """
    spec = parse_source(text)
    if spec.kind in _IMMUTABLE:
        bars, report = _cached(spec, os.environ.get("MARKET_METARL_DATA", ""))
        return bars.copy(), report
    return _LOADERS[spec.kind](spec)


@functools.lru_cache(maxsize=64)
def _cached(spec: SourceSpec, data_dir_env: str) -> tuple[pd.DataFrame, BarsReport]:
    # data_dir_env keys the cache: pointing MARKET_METARL_DATA elsewhere reads afresh.
    return _LOADERS[spec.kind](spec)


def load_bars(text: str) -> pd.DataFrame:
    """Load the bars a source spec names (validated; see :mod:`market_metarl.data.bars`)."""
    return load_bars_with_report(text)[0]


def load_task_bars(task: TaskSpec, warmup: int | None = None) -> pd.DataFrame:
    """A task's bars: ``warmup`` rows before ``task.start`` (default ``task.warmup_days``) to its end.

    Raises:
        DataError: The source has no bars in the task's window, or too little history before it.
    """
    bars = load_bars(task.source)
    return slice_with_warmup(
        bars, task.start, task.end, task.warmup_days if warmup is None else warmup, task.name
    )


def slice_with_warmup(
    bars: pd.DataFrame, start: dt.date, end: dt.date, warmup: int, name: str = "task"
) -> pd.DataFrame:
    """Rows from ``warmup`` bars before ``start`` through ``end`` (inclusive)."""
    idx = bars.index
    first = int(idx.searchsorted(pd.Timestamp(start), side="left"))
    last = int(idx.searchsorted(pd.Timestamp(end), side="right"))
    if last <= first:
        raise DataError(
            f"{name}: no bars between {start} and {end}; the data covers "
            f"{idx[0].date()} to {idx[-1].date()}"
        )
    if first < warmup:
        raise DataError(
            f"{name}: needs {warmup} bars of history before {start} but the data has {first}; "
            "start the task later or use a shorter window"
        )
    return bars.iloc[first - warmup : last]


def _load_bundled(spec: SourceSpec) -> tuple[pd.DataFrame, BarsReport]:
    from market_metarl.data.bundled import load_bundled

    return load_bundled(spec.target)


CSV_OPTIONS: tuple[str, ...] = ("symbol", "name", "repair", "repair_max_rows")
"""Options of a ``csv:`` source: ``symbol`` picks the rows of a long file (and names the asset),
``name`` names the asset only, ``repair``/``repair_max_rows`` set the bad-row policy."""


def _load_csv(spec: SourceSpec) -> tuple[pd.DataFrame, BarsReport]:
    from market_metarl.data.csvfile import read_csv_bars
    from market_metarl.data.repair import RepairPolicy

    unknown = sorted({k for k, _ in spec.options} - set(CSV_OPTIONS))
    if unknown:
        raise DataError(
            f"{spec.text}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(CSV_OPTIONS)}"
        )
    repair = RepairPolicy.from_options(dict(spec.options), spec.text)
    return read_csv_bars(spec.target, symbol=spec.option("symbol"), repair=repair)


def _load_yfinance(spec: SourceSpec) -> tuple[pd.DataFrame, BarsReport]:
    from market_metarl.data.yahoo import load_yfinance

    offline = spec.option("offline", "0") not in ("0", "false", "no")
    return load_yfinance(spec.target, offline=offline)


def _int_option(spec: SourceSpec, key: str, default: int) -> int:
    value = spec.option(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{spec.text}: option {key} must be an integer, got {value!r}") from None


def _load_synthetic(spec: SourceSpec) -> tuple[pd.DataFrame, BarsReport]:
    from market_metarl.data import synthetic

    allowed = {"ar-regimes": {"seed", "tasks", "days"}, "gbm": {"seed", "days"}}
    if spec.target not in allowed:
        raise DataError(f"unknown synthetic family {spec.target!r}; valid: {', '.join(allowed)}")
    unknown = sorted({k for k, _ in spec.options} - allowed[spec.target])
    if unknown:
        raise DataError(
            f"{spec.text}: unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(allowed[spec.target]))}"
        )
    seed = _int_option(spec, "seed", 0)
    try:
        if spec.target == "gbm":
            frame = synthetic.gbm(seed=seed, days=_int_option(spec, "days", 1000))
        else:
            params = synthetic.ARRegimeParams(
                n_tasks=_int_option(spec, "tasks", 40), days=_int_option(spec, "days", 90)
            )
            frame = synthetic.ar_regimes(seed, params)[0]
    except ConfigError as exc:
        raise DataError(f"{spec.text}: {exc}") from None
    return validate_bars(frame, source=spec.text)


_LOADERS: dict[str, Callable[[SourceSpec], tuple[pd.DataFrame, BarsReport]]] = {
    "bundled": _load_bundled,
    "csv": _load_csv,
    "yfinance": _load_yfinance,
    "synthetic": _load_synthetic,
}
_EXAMPLES = {
    "bundled": "SPY",
    "csv": "path/to/file.csv",
    "yfinance": "SPY",
    "synthetic": "ar-regimes?seed=3",
}
SOURCE_KINDS: tuple[str, ...] = tuple(_LOADERS)
_IMMUTABLE = frozenset({"bundled", "synthetic"})
