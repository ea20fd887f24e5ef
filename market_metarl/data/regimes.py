"""Regime slicing: cut one symbol's bars into labelled, contiguous segments (the meta-RL tasks).

Four methods, one closed registry (:data:`REGIME_METHODS`), one entry point (:func:`slice_regimes`):

- ``window``: fixed-length segments of ``length`` bars.
- ``trend-vol``: per day, the trailing ``lookback``-day return and volatility give a label (causal);
  runs of equal labels become segments.
- ``hmm``: a Gaussian HMM on [daily log return, rolling volatility], decoded with Viterbi.
- ``changepoint``: penalised change-point detection (Pelt, l2 cost) on the same two features.

Every method returns segments that cover the whole series: contiguous, no overlaps, the first starts
at the first bar and the last ends at the last bar, each at least ``min_length`` bars. Shorter runs
are merged away, shortest first, into the neighbour whose mean features (standardised daily log
return and rolling volatility) are closest; an equidistant tie goes to the preceding neighbour.
The methods live in :mod:`market_metarl.data.segmentation`.

Every segment is then labelled by the same function,
:func:`~market_metarl.data.regime_labels.label_segment`, from a closed vocabulary
(:data:`~market_metarl.data.regime_labels.REGIME_LABELS`): trend (``bull``/``bear``/``sideways``)
from the segment's annualised mean log return against ``trend_threshold`` (default 5 %),
volatility (``calm``/``volatile``) from its annualised volatility against an absolute
``vol_threshold`` (default 20 %); see :mod:`market_metarl.data.regime_labels`.

Hindsight: ``hmm`` (without ``fit_end``), ``changepoint`` and the segment labels use the whole
series, which is fine for defining meta-training tasks; evaluation must fit on the training period
only (``hmm`` with ``fit_end``), and reports must say that regime boundaries are known in hindsight.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.data.regime_labels import label_segment
from market_metarl.data.segmentation import (
    Segments,
    changepoint_segments,
    hmm_segments,
    positive_int,
    trend_vol_segments,
    window_segments,
)
from market_metarl.types import ConfigError, DataError, Regime

LABEL_PARAMS: tuple[str, ...] = ("trend_threshold", "vol_threshold")
"""Labelling parameters every method accepts."""

SegmentFn = Callable[..., Segments]

REGIME_METHODS: dict[str, SegmentFn] = {
    "window": window_segments,
    "trend-vol": trend_vol_segments,
    "hmm": hmm_segments,
    "changepoint": changepoint_segments,
}
"""Closed registry: method name -> ``segment(bars, *, min_length, seed, **params) -> Segments``."""


def method_params(method: str) -> tuple[str, ...]:
    """Parameters ``slice_regimes`` accepts for ``method`` (its own plus the labelling ones)."""
    sig = inspect.signature(REGIME_METHODS[method])
    own = [p for p in sig.parameters if p not in ("bars", "min_length", "seed")]
    return tuple(dict.fromkeys([*own, *LABEL_PARAMS]))


def slice_regimes(
    bars: pd.DataFrame,
    method: str,
    symbol: str = "",
    min_length: int = 20,
    seed: int = 0,
    **params: Any,
) -> list[Regime]:
    """Slice a bars frame into labelled regimes that tile it.

    Args:
        bars: A validated bars frame (see :func:`market_metarl.data.bars.validate_bars`).
        method: One of :data:`REGIME_METHODS`.
        symbol: Symbol recorded on each regime.
        min_length: Fewest bars per regime (shorter runs are merged into a neighbour).
        seed: Seed of the fitted methods (``hmm``); same seed, same regimes.
        **params: Method parameters (``method_params(method)`` lists them): ``window``: length;
            ``trend-vol``: lookback; ``hmm``: n_states, fit_end, n_iter, vol_window;
            ``changepoint``: penalty, vol_window; all: trend_threshold, vol_threshold.

    Returns:
        Regimes in date order; both ends inclusive, contiguous, covering every bar.

    Raises:
        ConfigError: On an unknown method or parameter, or an invalid parameter value.
        DataError: If the series has fewer than ``2 * min_length`` rows.
    """
    min_length = _check_request(bars, method, min_length, params)
    label_kw = {k: params[k] for k in LABEL_PARAMS if k in params}
    seg_kw = {k: v for k, v in params.items() if k not in LABEL_PARAMS}
    if method == "trend-vol":
        seg_kw.update(label_kw)
    segments = REGIME_METHODS[method](bars, min_length=min_length, seed=seed, **seg_kw)
    index = bars.index
    return [
        Regime(
            symbol=symbol,
            start=pd.Timestamp(index[start]),
            end=pd.Timestamp(index[stop - 1]),
            label=label_segment(bars.iloc[max(start - 1, 0) : stop], **label_kw),
            method=method,
        )
        for start, stop in segments
    ]


def check_request(method: str, min_length: Any, params: dict[str, Any]) -> int:
    """Check a regimes request before any data is read: method, parameter names and values.

    Returns:
        ``min_length`` as an int.

    Raises:
        ConfigError: An unknown method or parameter, ``min_length`` not an integer >= 2, or a
            labelling parameter that is not a non-negative number.
    """
    if method not in REGIME_METHODS:
        raise ConfigError(
            f"unknown regime method {method!r}; valid methods: {', '.join(REGIME_METHODS)}"
        )
    valid = method_params(method)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"regime method {method!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"valid parameters: {', '.join(valid)}"
        )
    for key in LABEL_PARAMS:
        value = params.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"regimes.{key} must be a non-negative number, got {value!r}")
    return positive_int("min_length", min_length, minimum=2)


def _check_request(bars: pd.DataFrame, method: str, min_length: Any, params: dict[str, Any]) -> int:
    """:func:`check_request`, then the series: a close column and ``2 * min_length`` rows.

    Raises:
        ConfigError: See :func:`check_request`.
        DataError: No close column, or fewer than ``2 * min_length`` rows.
    """
    min_length = check_request(method, min_length, params)
    if "close" not in bars.columns:
        raise DataError("bars have no close column; pass a validated bars frame")
    if len(bars) < 2 * min_length:
        raise DataError(
            f"regimes: the series has {len(bars)} row(s), at least {2 * min_length} needed "
            f"(2 * min_length={min_length}); give a longer series or lower min_length"
        )
    return min_length


REGIME_COLUMNS: tuple[str, ...] = ("symbol", "start", "end", "label", "method", "days")
"""Columns of the regimes table (``market-metarl regimes --out F.csv`` writes it)."""


def regimes_to_frame(regimes: list[Regime], bars: pd.DataFrame | None = None) -> pd.DataFrame:
    """Regimes as a frame with columns ``symbol,start,end,label,method,days``.

    ``days`` is the number of bars in the span when ``bars`` is given, else the number of weekdays
    (trading days plus holidays).
    """
    rows = []
    for r in regimes:
        if bars is not None:
            days = int(((bars.index >= r.start) & (bars.index <= r.end)).sum())
        else:
            days = int(np.busday_count(r.start.date(), (r.end + pd.Timedelta(days=1)).date()))
        rows.append({**r.as_row(), "days": days})
    return pd.DataFrame(rows, columns=list(REGIME_COLUMNS))


def regimes_from_frame(frame: pd.DataFrame) -> list[Regime]:
    """Rebuild regimes from :func:`regimes_to_frame` output (``days`` is ignored).

    Raises:
        DataError: On missing columns or unparseable dates.
    """
    missing = [c for c in ("start", "end", "label", "method") if c not in frame.columns]
    if missing:
        raise DataError(
            f"regimes table lacks column(s) {', '.join(missing)} "
            f"(found {', '.join(map(str, frame.columns))}); "
            "expected symbol,start,end,label,method,days"
        )
    try:
        starts = pd.DatetimeIndex(pd.to_datetime(frame["start"]))
        ends = pd.DatetimeIndex(pd.to_datetime(frame["end"]))
    except (ValueError, TypeError) as exc:
        raise DataError(f"regimes table: bad start/end date ({exc}); use YYYY-MM-DD") from None
    if starts.hasnans or ends.hasnans:
        raise DataError("regimes table: empty start/end date; fill or delete those rows")
    symbols = frame["symbol"] if "symbol" in frame.columns else pd.Series("", index=frame.index)
    return [
        Regime(
            symbol="" if pd.isna(sym) else str(sym),
            start=pd.Timestamp(start),
            end=pd.Timestamp(end),
            label=str(label),
            method=str(method),
        )
        for sym, start, end, label, method in zip(
            symbols, starts, ends, frame["label"], frame["method"], strict=True
        )
    ]
