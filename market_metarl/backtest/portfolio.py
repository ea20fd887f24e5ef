"""The multi-asset rolling backtest: one book over N assets, each adapted on its own.

What a multi-asset paper account (:mod:`market_metarl.live.multistep`) does, computed in one pass
over the whole history, as the reference that account is checked against:

1. each asset's sleeve weights come from the rolling protocol on that asset alone
   (:func:`~market_metarl.meta.protocol.rolling_targets`: adapt on its last K days every R days,
   each block starting from the weight the previous block left);
2. the capital split of each decision day is the causal rule of
   :func:`~market_metarl.meta.allocation.capital_split` (``equal`` or ``inverse_vol``);
3. the book holds ``a_i * s_i`` of its equity in asset ``i`` and is rebalanced every day, at the
   next open, by the env simulator over all assets at once
   (:class:`~market_metarl.envs.simulator.MarketSimulator`: one equity, one cost, the targets
   applied to the equity after costs).

Conventions: the decision after the close of day t reads bars dated <= t and fills at the open of
t+1; the books are marked at each close from the first decision day (all cash) through the day
after the last decision. No guardrail acts here (the paper account's guardrails can only change
its book when they bind).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_metarl.backtest.simulate import inv_adv_of
from market_metarl.envs.costs import CostModel
from market_metarl.envs.simulator import MarketSimulator
from market_metarl.meta.allocation import capital_split, closes_needed
from market_metarl.meta.contracts import Agent
from market_metarl.meta.protocol import rolling_targets
from market_metarl.meta.run import TrainedRun
from market_metarl.types import DataError


@dataclass(frozen=True)
class PortfolioBook:
    """A multi-asset rolling backtest's decisions and book.

    Attributes:
        symbols: The assets, in column order.
        dates: The decision days ``(T,)``.
        split: The capital split of each decision day ``(T, N)``.
        sleeves: Each asset's rolling-protocol sleeve weight ``(T, N)``.
        weights: The book's target weights ``split * sleeves`` ``(T, N)``.
        marks: The closes marked: the decision days and the execution day after the last
            ``(T + 1,)``.
        shares: Shares held at each of those closes ``(T + 1, N)``.
        cash: Cash at each of those closes ``(T + 1,)``.
        equity: Equity at each of those closes ``(T + 1,)``.
    """

    symbols: tuple[str, ...]
    dates: pd.DatetimeIndex
    split: np.ndarray
    sleeves: np.ndarray
    weights: np.ndarray
    marks: pd.DatetimeIndex
    shares: np.ndarray
    cash: np.ndarray
    equity: np.ndarray


def rolling_portfolio(
    run: TrainedRun,
    bars: Mapping[str, pd.DataFrame],
    start: dt.date,
    days: int,
    k_days: int,
    every: int,
    allocation: str = "equal",
    vol_window: int = 60,
    cash: float = 100_000.0,
    agent: Agent | None = None,
) -> PortfolioBook:
    """Backtest ``days`` decision days from ``start`` of the run's policy over several assets.

    Args:
        run: The trained run (env settings, costs, agents).
        bars: Each asset's bars (symbol -> frame), with a bar after the last decision day.
        start: The first decision day (the rolling origin), a session of every asset.
        days: Number of decision days T.
        k_days: K, support days of each adaptation.
        every: R, decision days between adaptations.
        allocation: The capital split rule (``equal`` or ``inverse_vol``).
        vol_window: Sessions in ``inverse_vol``'s trailing volatility.
        cash: Initial cash.
        agent: The policy (default: the run's adapted agent).

    Raises:
        DataError: An asset without those decision days, or too little history.
    """
    agent = agent or run.agent("adapted")
    symbols = tuple(bars)
    sleeves, dates = [], None
    for symbol in symbols:
        view = run.market_view(bars[symbol], symbol)
        first = view.row(start)
        if view.dates[first] != pd.Timestamp(start) or first + days > view.days:
            raise DataError(f"{symbol} has no {days} decision days from {start}")
        if dates is None:
            dates = view.dates[first : first + days]
        elif not view.dates[first : first + days].equals(dates):
            raise DataError(f"{symbol}'s decision days differ from {symbols[0]}'s")
        sleeves.append(rolling_targets(agent, view, first, first + days, k_days, every)[:, 0])
    assert dates is not None
    sleeve = np.column_stack(sleeves)
    split = np.vstack([_split_on(bars, symbols, day, allocation, vol_window) for day in dates])
    weights = split * sleeve
    marks, shares, cash_path, equity = _book(run, bars, symbols, dates, weights, cash)
    return PortfolioBook(symbols, dates, split, sleeve, weights, marks, shares, cash_path, equity)


def _split_on(
    bars: Mapping[str, pd.DataFrame],
    symbols: tuple[str, ...],
    day: pd.Timestamp,
    rule: str,
    vol_window: int,
) -> np.ndarray:
    """The capital split of decision ``day`` from the closes dated ``<= day``."""
    need = closes_needed(rule, vol_window)
    columns = []
    for symbol in symbols:
        close = bars[symbol]["close"]
        columns.append(close.loc[close.index <= day].to_numpy()[-need:])
    return capital_split(rule, np.column_stack(columns), vol_window, symbols)


def _book(
    run: TrainedRun,
    bars: Mapping[str, pd.DataFrame],
    symbols: tuple[str, ...],
    dates: pd.DatetimeIndex,
    weights: np.ndarray,
    cash: float,
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Book ``weights`` with the env simulator over all assets: marks, shares, cash, equity."""
    first = bars[symbols[0]]
    after = first.index[first.index > dates[-1]]
    if len(after) == 0:
        raise DataError(f"no bar after the last decision day {dates[-1].date()}")
    marks = pd.DatetimeIndex(dates.append(pd.DatetimeIndex([after[0]])))
    frames = [bars[s].reindex(marks) for s in symbols]
    if any(f[["open", "close"]].isna().to_numpy().any() for f in frames):
        raise DataError("an asset lacks a bar on a decision or execution day")
    opens = np.stack([f["open"].to_numpy(np.float64) for f in frames], axis=-1)[None]
    closes = np.stack([f["close"].to_numpy(np.float64) for f in frames], axis=-1)[None]
    model = CostModel.from_spec(run.costs)
    adv = None
    if model.impact_coef:
        adv = np.stack([inv_adv_of(bars[s]).reindex(marks).to_numpy() for s in symbols], -1)[None]
    sim = MarketSimulator(opens, closes, model, cash, adv)
    sim.reset(0)
    shares, cash_path, equity = [sim.shares[0].copy()], [float(sim.cash[0, 0])], [float(cash)]
    for w in weights:
        step = sim.step(w[None])
        shares.append(sim.shares[0].copy())
        cash_path.append(float(sim.cash[0, 0]))
        equity.append(float(step.equity[0]))
    return marks, np.array(shares), np.array(cash_path), np.array(equity)
