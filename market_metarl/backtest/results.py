"""The records a backtest computes before anything is written: its books and the whole result.

The runner fills them (:mod:`~market_metarl.backtest.runner`, through
:mod:`~market_metarl.backtest.booking`); the statistics (:mod:`~market_metarl.backtest.figures`),
the files (:mod:`~market_metarl.backtest.outputs`), the report and the plots only read them.

Days counted in the metrics (``active days``): the days each traded decision earns, plus, after a
task, the day the book is closed (its overnight gap and exit cost). Days between regime tasks are
flat (zero return) and not counted. Across symbols the active days of each symbol's book are
pooled in symbol order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.backtest.markets import Market, Protocol


@dataclass
class BacktestBook:
    """One strategy (and seed) trading one market: its schedule and both books.

    Attributes:
        label: ``strategy`` for seed 0, else ``strategy/seedN`` (a column of ``positions.csv``).
        strategy: Name in :data:`~market_metarl.backtest.strategies.STRATEGIES`.
        seed: Seed of a seeded strategy (0 otherwise).
        market: The market traded.
        targets: Target weight of each decision day.
        equity: backtrader's equity at each close, first decision day through the day after the last.
        env_equity: The env simulator's equity on the same days.
        traded: Traded weight of each day after the first (env simulator).
        task_days: Active days of each segment (see the module docstring).
        orders: Orders backtrader filled.
        rejected: Orders backtrader rejected.
    """

    label: str
    strategy: str
    seed: int
    market: Market
    targets: pd.Series
    equity: pd.Series
    env_equity: pd.Series
    traded: pd.Series
    task_days: list[pd.DatetimeIndex]
    orders: int
    rejected: int

    def returns(self) -> pd.Series:
        """Simple daily returns of backtrader's equity (every day after the first)."""
        return self.equity.pct_change().iloc[1:]

    def task_returns(self) -> list[np.ndarray]:
        """Simple daily returns of each segment's active days."""
        r = self.returns()
        return [r.loc[days].to_numpy() for days in self.task_days]

    @property
    def active(self) -> pd.DatetimeIndex:
        """Every active day, segment after segment."""
        return pd.DatetimeIndex(np.concatenate([d.to_numpy() for d in self.task_days]))


@dataclass
class Backtest:
    """Everything computed, before it is written.

    Attributes:
        protocol: ``regime`` or ``rolling``.
        adapt_days: K, support days.
        horizon: H, query days of a regime task.
        every: R, days between adaptations (rolling).
        seeds: Seeds of the seeded strategies.
        markets: The markets traded, in symbol order.
        accounts: One book per strategy, seed and market (strategy, then seed, then market order).
        zero_shot: Per symbol, the task returns of ``adapted`` before adapting (its zero-shot).
        costs: The run's cost settings.
        native: backtrader's native ``order_target_percent`` on the first book, against the env.
        native_equity: Its equity.
        fits: Per fitted rule (``hmm_switch``) and symbol, what it was fitted on.
    """

    protocol: Protocol
    adapt_days: int
    horizon: int
    every: int
    seeds: int
    markets: list[Market]
    accounts: list[BacktestBook]
    zero_shot: dict[str, list[np.ndarray]]
    costs: dict[str, float]
    native: dict[str, Any]
    native_equity: pd.Series
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
