"""Rendering of the single envs: a one-line text state and a price / position / equity chart.

The env keeps a :class:`RenderTrace` only when it was built with a ``render_mode``, so an env
without one pays one ``None`` check per step. The trace holds what the env does not already store
(the weights held and the equity at each marked close); prices and dates come from the env's
:class:`~market_metarl.envs.market.TaskMarket`. Everything shown is as of the last close marked:
no later bar is read, and the chart's x axis spans the task's dates (which are known in advance)
so successive frames line up.

matplotlib is imported only when an env builds its :class:`Chart` (on its first ``"rgb_array"``
render), which draws on matplotlib's Agg canvas (``Figure`` + ``FigureCanvasAgg``): no pyplot, no
global figure state, no window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from market_metarl.types import ConfigError

RENDER_MODES: tuple[str, ...] = ("ansi", "rgb_array")
"""Render modes of :class:`~market_metarl.envs.trading_env.TradingEnv` and its subclasses."""

RENDER_FPS = 4
"""Frames per second a recorder should play rendered days at (``metadata["render_fps"]``)."""

CHART_SIZE_PX: tuple[int, int] = (480, 640)
"""``(height, width)`` of an ``"rgb_array"`` frame, in pixels."""

_DPI = 80


def check_render_mode(render_mode: object) -> str | None:
    """``render_mode`` if it is None or one of :data:`RENDER_MODES`, else a :class:`ConfigError`."""
    if render_mode is None or (isinstance(render_mode, str) and render_mode in RENDER_MODES):
        return render_mode
    raise ConfigError(
        f"render_mode must be None, {', '.join(map(repr, RENDER_MODES))}, got {render_mode!r}; "
        "for a window use gym.make(..., render_mode='human'), which shows the 'rgb_array' "
        "frames with Gymnasium's HumanRendering wrapper (needs pygame)"
    )


class RenderTrace:
    """Day index, weights held and equity at each close marked in the current episode."""

    def __init__(self) -> None:
        """An empty trace (filled from the next ``reset``)."""
        self.days: list[int] = []
        self.positions: list[Any] = []
        self.equity: list[float] = []

    def reset(self, day: int, position: Any, equity: float) -> None:
        """Start a new episode at ``day``: forget the last one."""
        self.days.clear()
        self.positions.clear()
        self.equity.clear()
        self.record(day, position, equity)

    def record(self, day: int, position: Any, equity: float) -> None:
        """Append the close of ``day``: weight(s) held after it and the equity marked there."""
        self.days.append(day)
        self.positions.append(np.array(position, dtype=float, copy=True))
        self.equity.append(float(equity))

    def drawdown(self) -> float:
        """Fraction the last equity lies below its running peak (0 at a new high)."""
        return 1.0 - self.equity[-1] / max(self.equity)


def render_text(
    trace: RenderTrace, dates: Sequence[dt.date], closes: np.ndarray, symbols: Sequence[str]
) -> str:
    """One line: date, close price(s), weight(s) held, equity and drawdown at the last close.

    Args:
        trace: The episode so far (at least the reset day).
        dates: Date of every row of ``closes``.
        closes: ``(days, n_assets)`` close prices.
        symbols: Name of each asset (column of ``closes``).
    """
    t = trace.days[-1]
    weights = np.atleast_1d(trace.positions[-1])
    prices = " ".join(f"{s}={closes[t, i]:.2f}" for i, s in enumerate(symbols))
    held = " ".join(f"{w:+.3f}" for w in weights)
    return (
        f"{dates[t]} close {prices} | position {held} | "
        f"equity {trace.equity[-1]:,.2f} | drawdown {trace.drawdown():.2%}"
    )


class Chart:
    """The ``"rgb_array"`` frame of one env: built once, its lines re-drawn for each render.

    Three panels over the task's dates: close price (relative to the episode's first close when
    there are several assets), weight(s) held, and equity with its drawdown from the running peak
    shaded. Only days of the trace are drawn, so nothing after the last close marked is shown.
    """

    def __init__(
        self,
        dates: Sequence[dt.date],
        symbols: Sequence[str],
        span: tuple[int, int],
        max_leverage: float,
    ) -> None:
        """Lay out the figure (on matplotlib's Agg canvas) and its empty lines.

        Args:
            dates: Date of every row of the market.
            symbols: Name of each asset.
            span: First and last row of the task, for a fixed x axis.
            max_leverage: Bound of the weight axis.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
        from matplotlib.ticker import StrMethodFormatter

        height, width = CHART_SIZE_PX
        self.fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        # fixed margins: a layout engine would triple the cost of a frame
        self.fig.subplots_adjust(left=0.13, right=0.97, top=0.94, bottom=0.07, hspace=0.12)
        axes = self.fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": (2, 1, 1.5)})
        self.ax_price, self.ax_pos, self.ax_eq = axes
        self.dates, self.symbols = dates, list(symbols)
        many = len(self.symbols) > 1
        self.price_lines = [self.ax_price.plot([], [])[0] for _ in symbols]
        self.ax_price.set_ylabel("close / first" if many else f"{symbols[0]} close")
        if many:
            self.ax_price.legend(
                self.price_lines, self.symbols, loc="upper left", ncols=len(symbols)
            )
        self.pos_lines = [self.ax_pos.plot([], [], drawstyle="steps-post")[0] for _ in symbols]
        self.ax_pos.axhline(0.0, color="grey", linewidth=0.8)
        self.ax_pos.set_ylim(-1.1 * max_leverage, 1.1 * max_leverage)
        self.ax_pos.set_ylabel("weight")
        (self.eq_line,) = self.ax_eq.plot([], [], color="tab:green")
        self.dd_fill: Any = None
        self.ax_eq.set_ylabel("equity")
        self.ax_eq.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        locator = AutoDateLocator()
        self.ax_eq.xaxis.set_major_locator(locator)
        self.ax_eq.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        first, last = dates[span[0]], dates[span[1]]
        margin = dt.timedelta(days=max(1, (last - first).days // 100))
        self.ax_eq.set_xlim(first - margin, last + margin)
        for ax in axes:
            ax.grid(alpha=0.3)
        self.title = self.fig.suptitle("", fontsize="medium")

    def frame(self, trace: RenderTrace, closes: np.ndarray) -> np.ndarray:
        """The ``(H, W, 3) uint8`` image of ``trace`` (:data:`CHART_SIZE_PX`).

        Args:
            trace: The episode so far (at least the reset day).
            closes: ``(days, n_assets)`` close prices; rows after the last traced day are not read.
        """
        days = trace.days
        x = [self.dates[t] for t in days]
        marker = "o" if len(days) == 1 else ""
        prices = closes[days[0] : days[-1] + 1]
        if len(self.symbols) > 1:
            prices = prices / prices[0]
        weights = np.stack([np.atleast_1d(p) for p in trace.positions])
        lines = zip(self.price_lines + self.pos_lines, [*prices.T, *weights.T], strict=True)
        for line, y in lines:
            line.set_data(x, y)
            line.set_marker(marker)
        equity = np.asarray(trace.equity)
        self.eq_line.set_data(x, equity)
        self.eq_line.set_marker(marker)
        if self.dd_fill is not None:
            self.dd_fill.remove()
        peak = np.maximum.accumulate(equity)
        self.dd_fill = self.ax_eq.fill_between(x, equity, peak, color="tab:red", alpha=0.3)
        for ax in (self.ax_price, self.ax_eq):
            ax.relim()
            ax.autoscale_view(scalex=False)
        held = " ".join(f"{w:+.2f}" for w in weights[-1])
        self.title.set_text(
            f"{', '.join(self.symbols)}   {self.dates[days[-1]]}   position {held}   "
            f"equity {equity[-1]:,.0f}   drawdown {trace.drawdown():.1%}"
        )
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()
