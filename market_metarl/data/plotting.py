"""Regime charts: the close price with each regime span shaded by label, and the rolling volatility.

matplotlib is imported inside the functions (Agg backend, forced), and every figure is closed after
saving, so plotting leaves no pyplot state behind and never needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.data.regime_labels import REGIME_LABELS, VOL_THRESHOLD
from market_metarl.fileio import atomic_write
from market_metarl.types import TRADING_DAYS_PER_YEAR, DataError, Regime

REGIME_COLORS: dict[str, str] = {
    "bull-calm": "#a1d99b",
    "bull-volatile": "#238b45",
    "bear-calm": "#fcae91",
    "bear-volatile": "#cb181d",
    "sideways-calm": "#d9d9d9",
    "sideways-volatile": "#e6ab02",
}
"""Shade per label: greens for bull, reds for bear, grey/yellow for sideways; darker if volatile."""

_FALLBACK_COLORS = ("#9ecae1", "#bcbddc", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fdae6b")


def _colors_for(labels: Sequence[str]) -> dict[str, str]:
    """Colour per label: the fixed map for the vocabulary, a fallback cycle for anything else."""
    colors = {}
    extra = 0
    for label in labels:
        if label in REGIME_COLORS:
            colors[label] = REGIME_COLORS[label]
        elif label not in colors:
            colors[label] = _FALLBACK_COLORS[extra % len(_FALLBACK_COLORS)]
            extra += 1
    return colors


def plot_regimes(
    bars: pd.DataFrame,
    regimes: Sequence[Regime],
    path: str | Path,
    title: str | None = None,
    log_scale: bool = True,
    vol_panel: bool = True,
    vol_window: int = 20,
) -> Path:
    """Save a PNG of the close price with regime spans shaded by label.

    Args:
        bars: Bars frame (needs ``close``).
        regimes: Regimes of these bars, in any order (e.g. from ``slice_regimes``).
        path: Where to write the PNG (parent folders are created).
        title: Figure title; defaults to the symbol and method of the regimes.
        log_scale: Price axis in log scale.
        vol_panel: Add a lower panel with the trailing annualised volatility and the
            ``volatile`` threshold.
        vol_window: Trailing days of that volatility.

    Returns:
        The path written.

    Raises:
        DataError: If ``bars`` has no ``close`` column or no rows.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if "close" not in bars.columns or len(bars) == 0:
        raise DataError("plot_regimes needs a non-empty bars frame with a close column")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    close = bars["close"].astype("float64")
    ordered = sorted(regimes, key=lambda r: r.start)
    colors = _colors_for([r.label for r in ordered])

    if vol_panel:
        fig, (ax, ax_vol) = plt.subplots(
            2, 1, figsize=(12, 5), dpi=120, sharex=True, height_ratios=(3, 1)
        )
    else:
        fig, ax = plt.subplots(figsize=(12, 5), dpi=120)
        ax_vol = None
    try:
        axes = [ax] if ax_vol is None else [ax, ax_vol]
        _shade_regimes(axes, ordered, colors)
        _draw_price(ax, close, log_scale)
        _title_and_legend(ax, ordered, colors, title)
        if ax_vol is not None:
            _draw_vol(ax_vol, close, vol_window)
        _format_dates(axes[-1])
        fig.tight_layout()
        _save(fig, out)
    finally:
        plt.close(fig)
    return out


def _shade_regimes(axes: list[Any], ordered: Sequence[Regime], colors: dict[str, str]) -> None:
    """Shade each regime's span on every axis, with a thin white line at each boundary."""
    for i, r in enumerate(ordered):
        # Shade up to the next regime's start so contiguous spans leave no gap over weekends.
        right = ordered[i + 1].start if i + 1 < len(ordered) else r.end
        for a in axes:
            a.axvspan(r.start, right, color=colors[r.label], alpha=0.55, lw=0)
            if i > 0:
                a.axvline(r.start, color="white", lw=0.6)


def _draw_price(ax: Any, close: pd.Series, log_scale: bool) -> None:
    """The close in black; a log axis with readable ticks when asked and every price is > 0."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.plot(close.index, close.to_numpy(), color="black", lw=0.9)
    if log_scale and bool((close > 0).all()):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
        ax.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:.3g}")
        )
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_ylabel("close" + (" (log scale)" if log_scale else ""))
    ax.margins(x=0)
    ax.grid(True, which="major", axis="y", color="white", lw=0.5, alpha=0.8)


def _title_and_legend(
    ax: Any, ordered: Sequence[Regime], colors: dict[str, str], title: str | None
) -> None:
    """The title (default: symbol, regime count, method) and one legend entry per label shown.

    Labels of the vocabulary come first, in :data:`REGIME_LABELS` order, then any others.
    """
    from matplotlib.patches import Patch

    if title is None and ordered:
        symbol = ordered[0].symbol or "bars"
        title = f"{symbol}: {len(ordered)} regimes ({ordered[0].method})"
    if title:
        ax.set_title(title, loc="left")
    present = [label for label in (*REGIME_LABELS, *colors) if label in colors]
    handles = [
        Patch(facecolor=colors[label], alpha=0.55, label=label) for label in dict.fromkeys(present)
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", ncol=6, fontsize=8, framealpha=0.9)


def _draw_vol(ax_vol: Any, close: pd.Series, vol_window: int) -> None:
    """Trailing ``vol_window``-day annualised volatility, with the ``volatile`` threshold dashed."""
    from matplotlib.ticker import PercentFormatter

    log_ret = pd.Series(np.log(close.to_numpy()), index=close.index).diff()
    vol = log_ret.rolling(vol_window, min_periods=vol_window).std() * math.sqrt(
        TRADING_DAYS_PER_YEAR
    )
    ax_vol.plot(vol.index, vol.to_numpy(), color="black", lw=0.7)
    ax_vol.axhline(VOL_THRESHOLD, color="black", lw=0.6, ls="--")
    ax_vol.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax_vol.set_ylabel(f"vol {vol_window}d", fontsize=8)
    ax_vol.set_ylim(bottom=0)
    ax_vol.margins(x=0)


def _format_dates(bottom: Any) -> None:
    """Concise date ticks (6 to 14 of them) on the bottom axis, which the others share."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=6, maxticks=14)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _save(fig: Any, out: Path) -> None:
    """Save ``fig`` to ``out`` whole or not at all (written aside, then renamed)."""
    kind = out.suffix.lstrip(".").lower() or "png"
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, format=kind))
