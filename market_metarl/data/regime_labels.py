"""Regime labels: one closed vocabulary and the one function that labels a span of bars.

Every regime is labelled by :func:`label_segment`, whatever method cut it, from
:data:`REGIME_LABELS`: trend (``bull``/``bear``/``sideways``) from the span's annualised mean log
return against ``trend_threshold`` (default 5 %), volatility (``calm``/``volatile``) from its
annualised volatility against an absolute ``vol_threshold`` (default 20 %). The threshold is
absolute rather than relative to the series' median so that a label means the same thing on every
symbol and every date range, and so a segment can be labelled from its own bars alone; pass
``vol_threshold`` (e.g. 0.35 for single stocks) to shift it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from market_metarl.types import TRADING_DAYS_PER_YEAR, DataError

REGIME_LABELS: tuple[str, ...] = (
    "bull-calm",
    "bull-volatile",
    "bear-calm",
    "bear-volatile",
    "sideways-calm",
    "sideways-volatile",
)
"""The closed vocabulary of regime labels, ``<trend>-<volatility>``."""

TREND_THRESHOLD = 0.05
"""Annualised mean log return below which (in absolute value) a segment is ``sideways``."""

VOL_THRESHOLD = 0.20
"""Annualised volatility of daily log returns above which a segment is ``volatile``."""


def classify(
    ann_return: float,
    ann_vol: float,
    trend_threshold: float = TREND_THRESHOLD,
    vol_threshold: float = VOL_THRESHOLD,
) -> str:
    """Label from an annualised mean log return and an annualised volatility."""
    if ann_return >= trend_threshold:
        trend = "bull"
    elif ann_return <= -trend_threshold:
        trend = "bear"
    else:
        trend = "sideways"
    return f"{trend}-{'volatile' if ann_vol > vol_threshold else 'calm'}"


def label_segment(
    bars_slice: pd.DataFrame,
    trend_threshold: float = TREND_THRESHOLD,
    vol_threshold: float = VOL_THRESHOLD,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> str:
    """Label a span of bars from the close-to-close log returns inside it.

    Args:
        bars_slice: Bars of the segment. Returns are taken between consecutive closes in the slice,
            so include the bar before the segment to count its first day's return
            (:func:`slice_regimes` does).
        trend_threshold: ``|annualised mean log return|`` below this is ``sideways``.
        vol_threshold: Annualised volatility above this is ``volatile``.
        periods_per_year: Bars per year used to annualise (252 for daily equity bars).

    Returns:
        One of :data:`REGIME_LABELS`.

    Raises:
        DataError: If the slice has fewer than 2 bars.
    """
    close = bars_slice["close"].to_numpy(dtype=np.float64)
    if len(close) < 2:
        raise DataError(f"cannot label a segment of {len(close)} bar(s); give at least 2 bars")
    log_ret = np.diff(np.log(close))
    ann_return = float(log_ret.mean()) * periods_per_year
    ann_vol = float(log_ret.std(ddof=1 if len(log_ret) > 1 else 0)) * math.sqrt(periods_per_year)
    return classify(ann_return, ann_vol, trend_threshold, vol_threshold)
