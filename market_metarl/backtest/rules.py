"""Rule baselines as :class:`~market_metarl.meta.agents.Agent` s: a registry of weight functions.

Each rule maps the market's closes to a target weight per day (:data:`RULES`), causally: the
weight of decision day ``t`` reads bars dated ``<= t`` only. An agent learns which decision day it
is at when it adapts: the protocols adapt on ``episode.window(day - k + 1, day)`` of the market
view, a slice of the view's own price tensor, so the slice's position in that tensor is the day
(checked against the prices, so a window from anywhere else is an error, never a silent
misalignment). Each ``act`` then moves one day on.

- ``momentum``: ``sign`` of the trailing 20-day return (:class:`TrailingReturn`);
- ``mean_reversion``: minus the ``sign`` of the trailing 5-day return;
- ``vol_target``, ``tsmom``, ``macd``: :mod:`~market_metarl.backtest.baselines`, with the
  ``[backtest]`` table's target and window (:class:`~market_metarl.backtest.settings.BacktestSettings`);
- ``hmm_switch``: :mod:`~market_metarl.backtest.regime_switch`, its HMM fitted by
  :func:`switch_hmm` on bars up to the end of the run's training split.

Weights are limited to ``[0, max_leverage]`` when the env is long-only and to
``[-max_leverage, max_leverage]`` otherwise (0 without enough history).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from market_metarl.backtest.baselines import macd_weights, tsmom_weights, vol_target_weights
from market_metarl.backtest.regime_switch import ReturnHMM, fit_return_hmm, hmm_switch_from
from market_metarl.backtest.settings import BacktestSettings
from market_metarl.meta.episodes import Episode
from market_metarl.meta.protocol import MarketView
from market_metarl.types import DataError, RunError

if TYPE_CHECKING:
    from market_metarl.meta.run import TrainedRun


@dataclass(frozen=True)
class RuleInputs:
    """What a rule reads besides the closes.

    Attributes:
        settings: The ``[backtest]`` table.
        long_only: The account cannot be short.
        max_leverage: Largest absolute weight.
        hmm: The fitted HMM of ``hmm_switch`` (None for the other rules).
    """

    settings: BacktestSettings = field(default_factory=BacktestSettings)
    long_only: bool = False
    max_leverage: float = 1.0
    hmm: ReturnHMM | None = None


def trailing_return(close: pd.Series, lookback: int) -> pd.Series:
    """``close[t] / close[t - lookback] - 1`` (0 without ``lookback`` days of history)."""
    close = close.astype("float64")
    return (close / close.shift(lookback) - 1.0).fillna(0.0)


def _hmm_switch(close: pd.Series, x: RuleInputs) -> pd.Series:
    if x.hmm is None:
        raise RunError("hmm_switch needs its fitted HMM (see rules.switch_hmm)")
    s = x.settings
    return hmm_switch_from(close, x.hmm, s.vol_target, s.vol_window, x.max_leverage)


Rule = Callable[[pd.Series, RuleInputs], pd.Series]

RULES: dict[str, Rule] = {
    "momentum": lambda c, x: np.sign(trailing_return(c, 20)),
    "mean_reversion": lambda c, x: -1.0 * np.sign(trailing_return(c, 5)),
    "vol_target": lambda c, x: vol_target_weights(
        c, x.settings.vol_target, x.settings.vol_window, x.max_leverage
    ),
    "tsmom": lambda c, x: tsmom_weights(
        c,
        x.settings.vol_target,
        x.settings.vol_window,
        x.max_leverage,
        x.long_only,
        x.settings.tsmom_lookback,
        x.settings.tsmom_skip,
    ),
    "macd": lambda c, x: macd_weights(
        c, x.settings.vol_target, x.settings.vol_window, x.max_leverage, x.long_only
    ),
    "hmm_switch": _hmm_switch,
}
"""Rule name -> its weight per day from the closes (before the account's limits)."""


class TrailingReturn:
    """Trailing ``lookback``-day simple return of each decision day of a view (causal).

    Args:
        bars: The bars the view was built from (history before the view's first day is used).
        view: The market view whose decision days index the result.
        lookback: Days back.
    """

    def __init__(self, bars: pd.DataFrame, view: MarketView, lookback: int) -> None:
        """Compute the trailing return of every decision day of ``view``."""
        trailing = trailing_return(bars["close"], lookback)
        self.values = trailing.reindex(view.dates).fillna(0.0).to_numpy()

    def at(self, day: int) -> float:
        """The trailing return at decision day ``day`` (a row of the view)."""
        return float(self.values[day])


class RuleAgent:
    """A fixed rule on the bars; ``adapt`` only locates the decision day.

    Args:
        name: A rule of :data:`RULES`.
        bars: Bars of the view (history before the view's first day is read).
        view: The market view the protocol runs on.
        long_only: Clip weights to ``[0, max_leverage]``.
        max_leverage: Largest absolute weight.
        inputs: Settings and fitted pieces of the rule (defaults: the ``[backtest]`` defaults).
    """

    def __init__(
        self,
        name: str,
        bars: pd.DataFrame,
        view: MarketView,
        long_only: bool = False,
        max_leverage: float = 1.0,
        inputs: RuleInputs | None = None,
    ) -> None:
        """Compute the rule ``name``'s weight on every decision day of ``view``."""
        if name not in RULES:
            raise RunError(f"unknown rule {name!r}; valid: {', '.join(RULES)}")
        self.name = name
        x = inputs or RuleInputs()
        x = RuleInputs(x.settings, long_only, max_leverage, x.hmm)
        raw = RULES[name](bars["close"], x).reindex(view.dates).fillna(0.0).to_numpy()
        self.low = 0.0 if long_only else -max_leverage
        self.high = max_leverage
        self.weights = [min(max(float(w), self.low), self.high) for w in raw]
        self.closes = view.episode.closes
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
        weight = self.weights[self.day]
        self.day += 1
        return np.array([weight])

    def task_state(self) -> dict[str, np.ndarray]:
        """Nothing adapts: a rule only locates the decision day."""
        return {}


def switch_hmm(
    run: TrainedRun, bars: pd.DataFrame, symbol: str, settings: BacktestSettings
) -> tuple[ReturnHMM, dict[str, Any]]:
    """The HMM of ``hmm_switch`` for one market, fitted on training data only.

    Fitted on the market's own closes dated up to the end of the run's training split when they
    hold at least ``settings.hmm_min_fit_days`` returns; otherwise (an asset listed later, or a
    series that starts after the split) on the closes of the run's training symbols up to the
    same date, one sequence each.

    Returns:
        The model and a record of what it was fitted on (for ``metrics.json``).

    Raises:
        DataError: Neither holds enough returns.
    """
    from market_metarl.data.sources import load_bars

    fit_end = run.tasks.splits.windows()["train"][1]
    cut = pd.Timestamp(fit_end)
    own = bars["close"].loc[bars.index <= cut]
    fit_on, closes = [symbol], [own]
    if len(own) - 1 < settings.hmm_min_fit_days:
        sources = list(dict.fromkeys(t.source for t in run.tasks.split("train")))
        fit_on = sources
        closes = [c.loc[c.index <= cut] for c in (load_bars(s)["close"] for s in sources)]
    try:
        hmm = fit_return_hmm(
            closes, settings.hmm_seed, settings.hmm_iterations, settings.hmm_min_fit_days
        )
    except DataError as exc:
        raise DataError(
            f"{symbol}: hmm_switch is fitted on bars up to the end of the training split "
            f"({fit_end}); {exc}"
        ) from None
    info = {"fit_end": fit_end.isoformat(), "fit_on": fit_on, **hmm.as_dict()}
    return hmm, info
