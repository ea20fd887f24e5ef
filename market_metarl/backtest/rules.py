"""Simple rule baselines as :class:`~market_metarl.meta.agents.Agent` s: momentum and mean reversion.

They read the bars, not the observation, through :class:`TrailingReturn`, a causal helper: the
signal of decision day ``t`` is ``close[t] / close[t - lookback] - 1``, computed from bars dated
``<= t`` only. An agent learns which decision day it is at when it adapts: the protocols adapt on
``episode.window(day - k + 1, day)`` of the market view, a slice of the view's own price tensor,
so the slice's position in that tensor is the day (checked against the prices, so a window from
anywhere else is an error, never a silent misalignment). Each ``act`` then moves one day on.

- ``momentum``: ``sign`` of the trailing 20-day return;
- ``mean_reversion``: minus the ``sign`` of the trailing 5-day return.

Weights are ``+-1`` (0 on a zero return or without enough history), limited to ``[0, 1]`` when the
env is long-only and to ``max_leverage``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from market_metarl.meta.episodes import Episode
from market_metarl.meta.protocol import MarketView
from market_metarl.types import RunError

RULES: dict[str, tuple[int, float]] = {"momentum": (20, 1.0), "mean_reversion": (5, -1.0)}
"""Rule name -> (lookback in days, sign applied to the trailing return's sign)."""


class TrailingReturn:
    """Trailing ``lookback``-day simple return of each decision day of a view (causal).

    Args:
        bars: The bars the view was built from (history before the view's first day is used).
        view: The market view whose decision days index the result.
        lookback: Days back.
    """

    def __init__(self, bars: pd.DataFrame, view: MarketView, lookback: int) -> None:
        """Compute the trailing return of every decision day of ``view``."""
        close = bars["close"].astype("float64")
        trailing = close / close.shift(lookback) - 1.0
        self.values = trailing.reindex(view.dates).fillna(0.0).to_numpy()

    def at(self, day: int) -> float:
        """The trailing return at decision day ``day`` (a row of the view)."""
        return float(self.values[day])


class RuleAgent:
    """A fixed rule on a trailing return; ``adapt`` only locates the decision day.

    Args:
        name: ``momentum`` or ``mean_reversion`` (see :data:`RULES`).
        bars: Bars of the view.
        view: The market view the protocol runs on.
        long_only: Clip weights to ``[0, max_leverage]``.
        max_leverage: Largest absolute weight.
    """

    def __init__(
        self,
        name: str,
        bars: pd.DataFrame,
        view: MarketView,
        long_only: bool = False,
        max_leverage: float = 1.0,
    ) -> None:
        """Build the rule ``name`` on the market view's decision days."""
        if name not in RULES:
            raise RunError(f"unknown rule {name!r}; valid: {', '.join(RULES)}")
        lookback, self.sign = RULES[name]
        self.name = name
        self.signal = TrailingReturn(bars, view, lookback)
        self.closes = view.episode.closes
        self.low = 0.0 if long_only else -max_leverage
        self.high = max_leverage
        self.day = -1

    def init(self) -> None:
        """Forget the decision day."""
        self.day = -1

    def adapt(self, support: Episode) -> None:
        """Locate the decision day: the row of the view at whose close ``support`` ends."""
        self.day = self._locate(support)

    def _locate(self, support: Episode) -> int:
        """Row of the view at whose close ``support`` ends (see the module docstring)."""
        base, sub = self.closes, support.closes
        n = base.shape[-1]
        same = sub.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()
        first = (sub.storage_offset() - base.storage_offset()) // n
        last = first + sub.shape[1] - 1
        if not same or not 0 <= first <= last < base.shape[1]:
            raise RunError(f"{self.name}: adapt on a window of the market view it was built for")
        if not torch.equal(base[0, first : last + 1], sub[0]):
            raise RunError(f"{self.name}: the support window does not match the market view")
        return int(last)

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """The rule's weight on the current decision day; then move one day on."""
        if self.day < 0:
            raise RunError(f"{self.name}: call adapt() before act(); it locates the decision day")
        weight = self.sign * float(np.sign(self.signal.at(self.day)))
        self.day += 1
        return np.array([min(max(weight, self.low), self.high)])

    def task_state(self) -> dict[str, np.ndarray]:
        """Nothing adapts: a rule only locates the decision day."""
        return {}
