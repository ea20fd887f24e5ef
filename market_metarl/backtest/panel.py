"""Panel evaluation: many assets, many strategies, the rolling protocol, daily net returns.

What the real-data benchmark and a multi-asset study need, without backtrader in the loop: each
strategy's target weights come from the same protocol functions the backtest and paper trading use
(:func:`~market_metarl.meta.protocol.rolling_targets`), and are booked with the env simulator
(:func:`~market_metarl.backtest.simulate.simulate`) under the run's cost model; the backtest
reconciles that simulator with backtrader to 1e-12, so the books are the same.

Conventions: a decision after the close of day t reads bars dated <= t and fills at the open of
t+1; the return of day t+1 is ``equity[t+1] / equity[t] - 1`` (simple, net of every cost), indexed
by the day it is earned. Every strategy of an asset trades the same decision days, so their daily
returns are paired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_metarl.backtest.baselines import macd_weights, tsmom_weights, vol_target_weights
from market_metarl.backtest.markets import FrozenAgent
from market_metarl.backtest.regime_switch import hmm_switch_weights
from market_metarl.backtest.settings import BacktestSettings, backtest_settings
from market_metarl.backtest.simulate import simulate
from market_metarl.envs.costs import CostModel
from market_metarl.meta.contracts import Agent
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.protocol import MarketView, market_view, rolling_targets
from market_metarl.meta.run import TrainedRun
from market_metarl.types import TRADING_DAYS_PER_YEAR, ConfigError

LEARNED: tuple[str, ...] = ("adapted", "zeroshot", "pooled", "finetune")
"""Learned strategies of a panel: the run's agents (``zeroshot``: ``adapted`` never adapted)."""


@dataclass(frozen=True)
class PanelAsset:
    """One asset of a panel: its name and its whole bars frame (sliced per period)."""

    symbol: str
    bars: pd.DataFrame


@dataclass(frozen=True)
class Period:
    """Decision days ``start..end`` (inclusive ISO dates) of a panel evaluation."""

    start: dt.date
    end: dt.date


def period_bars(bars: pd.DataFrame, period: Period) -> pd.DataFrame:
    """The bars a period reads: all history up to ``end``, plus the execution day after it."""
    end = pd.Timestamp(period.end)
    after = bars.index[bars.index > end]
    stop = after[0] if len(after) else bars.index[-1]
    return bars.loc[bars.index <= stop]


def decision_rows(view: MarketView, period: Period, k_days: int) -> tuple[int, int] | None:
    """``(first, stop)`` decision rows of ``view`` inside ``period`` with K days before the first.

    None when the period leaves fewer than two decision days (the asset is skipped).
    """
    dates = view.dates
    first = max(int(dates.searchsorted(pd.Timestamp(period.start))), k_days - 1)
    stop = int(dates.searchsorted(pd.Timestamp(period.end), side="right"))
    return (first, stop) if stop - first >= 2 else None


def book_returns(
    bars: pd.DataFrame, dates: pd.DatetimeIndex, weights: np.ndarray, model: CostModel, cash: float
) -> pd.Series:
    """Daily net simple returns of target ``weights`` on decision ``dates`` (the simulator)."""
    targets = pd.Series(np.asarray(weights, dtype=np.float64).reshape(-1), index=dates)
    equity = simulate(bars, targets, model, cash).equity
    return equity.pct_change().iloc[1:]


def learned_agent(run: TrainedRun, strategy: str, seed: int = 0) -> Agent:
    """A learned strategy's agent: ``zeroshot`` is ``adapted`` with adaptation switched off."""
    if strategy == "zeroshot":
        return FrozenAgent(run.agent("adapted", seed))
    return run.agent(strategy, seed)


def learned_panel(
    run: TrainedRun,
    assets: Sequence[PanelAsset],
    period: Period,
    every: int,
    strategies: Sequence[str] = LEARNED,
    k_days: int | None = None,
) -> dict[tuple[str, str], pd.Series]:
    """Daily net returns of the run's learned strategies on each asset under the rolling protocol.

    Args:
        run: The trained run (its env settings, costs and agents).
        assets: The panel.
        period: Decision days traded.
        every: R, days between adaptations.
        strategies: Names in :data:`LEARNED` (or any name :meth:`TrainedRun.agent` knows).
        k_days: K (default: the run's ``adapt_days``).

    Returns:
        ``{(strategy, symbol): returns}``; assets with fewer than two decision days are left out.
    """
    k = k_days or run.adapt_days
    model = CostModel.from_spec(run.costs, TRADING_DAYS_PER_YEAR)
    cash = run.env_spec.initial_cash
    agents = {s: learned_agent(run, s) for s in strategies}
    out: dict[tuple[str, str], pd.Series] = {}
    for asset in assets:
        bars = period_bars(asset.bars, period)
        view = run.market_view(bars, asset.symbol)
        rows = decision_rows(view, period, k)
        if rows is None:
            continue
        first, stop = rows
        for name, agent in agents.items():
            weights = rolling_targets(agent, view, first, stop, k, every)
            out[name, asset.symbol] = book_returns(
                bars, view.dates[first:stop], weights, model, cash
            )
    return out


def equal_weight(returns: dict[str, pd.Series]) -> pd.Series:
    """The equal-weight portfolio of assets' daily returns.

    The mean over the assets that trade each day: rebalanced daily to equal weights, its return is
    the average of the assets' returns.
    """
    frame = pd.DataFrame(returns).sort_index()
    return frame.mean(axis=1, skipna=True).dropna()


def seed_average(per_seed: Sequence[pd.Series]) -> pd.Series:
    """One book's daily returns averaged over seeds on their common days (a seed ensemble)."""
    frame = pd.concat(list(per_seed), axis=1, join="inner")
    return frame.mean(axis=1)


RULE_BASELINES: tuple[str, ...] = ("buy_and_hold", "vol_target", "tsmom", "macd", "hmm_switch")
"""The strong simple baselines of a panel (see :mod:`market_metarl.backtest.baselines`)."""


def rule_weights(
    name: str,
    close: pd.Series,
    settings: BacktestSettings,
    train_end: dt.date,
    max_leverage: float,
    long_only: bool,
) -> pd.Series:
    """A baseline's target weight after each close of ``close`` (causal; see its function).

    Raises:
        ConfigError: ``name`` is not in :data:`RULE_BASELINES`.
    """
    target, window = settings.vol_target, settings.vol_window
    if name == "buy_and_hold":
        return pd.Series(min(1.0, max_leverage), index=close.index)
    if name == "vol_target":
        return vol_target_weights(close, target, window, max_leverage)
    if name == "tsmom":
        lookback, skip = settings.tsmom_lookback, settings.tsmom_skip
        return tsmom_weights(close, target, window, max_leverage, long_only, lookback, skip)
    if name == "macd":
        return macd_weights(close, target, window, max_leverage, long_only)
    if name == "hmm_switch":
        return hmm_switch_weights(
            close,
            train_end,
            target,
            window,
            max_leverage,
            settings.hmm_seed,
            settings.hmm_iterations,
            settings.hmm_min_fit_days,
        )
    raise ConfigError(f"unknown baseline {name!r}; valid: {', '.join(RULE_BASELINES)}")


def rule_panel(
    exp: Experiment,
    assets: Sequence[PanelAsset],
    period: Period,
    train_end: dt.date,
    rules: Sequence[str] = RULE_BASELINES,
) -> dict[tuple[str, str], pd.Series]:
    """Daily net returns of the baselines on each asset, with the run's costs.

    The decision days are those a run of ``exp`` trades (:func:`learned_panel`). The HMM switch is fitted on each asset's closes up to ``train_end`` only; the settings come
    from the config's ``[backtest]`` table.
    """
    settings = backtest_settings(exp.config.get("backtest"))
    model = CostModel.from_spec(exp.tasks.costs, TRADING_DAYS_PER_YEAR)
    cash, env = exp.env.initial_cash, exp.env
    out: dict[tuple[str, str], pd.Series] = {}
    for asset in assets:
        bars = period_bars(asset.bars, period)
        view = market_view(bars, exp, exp.tasks.costs, asset.symbol)
        rows = decision_rows(view, period, exp.train.adapt_days)
        if rows is None:
            continue
        dates = view.dates[rows[0] : rows[1]]
        for name in rules:
            w = rule_weights(
                name, bars["close"], settings, train_end, env.max_leverage, env.long_only
            )
            out[name, asset.symbol] = book_returns(
                bars, dates, w.reindex(dates).to_numpy(), model, cash
            )
    return out
