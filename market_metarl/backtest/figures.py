"""The numbers of ``metrics.json``: figures, intervals, P(beats), deflated Sharpe, reconciliation.

Figures are computed on the simple daily returns of each book's equity on its active days (see
:mod:`~market_metarl.backtest.results`), pooled over markets, with
:func:`~market_metarl.backtest.metrics.summary` (risk-free rate 0,
:data:`~market_metarl.types.TRADING_DAYS_PER_YEAR` periods a year); intervals and comparisons
come from :mod:`market_metarl.stats`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from market_metarl.backtest.daily import asset_figures, paired_intervals
from market_metarl.backtest.metrics import annual_return, max_drawdown, summary
from market_metarl.backtest.results import Backtest
from market_metarl.backtest.simulate import RECONCILE_TOLERANCE, reconcile
from market_metarl.backtest.strategies import UNDER_TEST
from market_metarl.stats import (
    bootstrap_ci,
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    prob_beats,
    sharpe,
)
from market_metarl.types import TRADING_DAYS_PER_YEAR

PPY = TRADING_DAYS_PER_YEAR
RETURNS_NOTE = "simple daily returns of account equity on active days; risk-free rate 0"
"""The convention of every figure, as ``metrics.json`` states it."""
RETURNS_CSV_NOTE = (
    "returns.csv: date,strategy,symbol,return: the simple daily net return (after costs) of each "
    "book on its active days; symbol 'portfolio' is the equal-weight portfolio of several assets "
    "(the mean of their returns on the days all are active)"
)


def pooled(bt: Backtest, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Active-day returns and traded weights of one label, pooled over markets."""
    rets, traded = [], []
    for acc in bt.accounts:
        if acc.label == label:
            days = acc.active
            rets.append(acc.returns().loc[days].to_numpy())
            traded.append(acc.traded.loc[days].to_numpy())
    return np.concatenate(rets), np.concatenate(traded)


def task_runs(bt: Backtest, strategy: str) -> tuple[list[list[np.ndarray]], list[str]]:
    """``runs[task][seed]`` daily returns of a strategy, and each task's symbol (the strata)."""
    per_seed: dict[int, list[np.ndarray]] = {}
    strata: list[str] = []
    for acc in bt.accounts:
        if acc.strategy == strategy:
            per_seed.setdefault(acc.seed, []).extend(acc.task_returns())
            if acc.seed == 0:
                strata += [acc.market.symbol] * len(acc.task_days)
    seeds = sorted(per_seed)
    runs = [[per_seed[s][t] for s in seeds] for t in range(len(strata))]
    return runs, strata


def task_sharpes(runs: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Sharpe ratio of each task under each seed (``nan`` where undefined)."""
    return [np.array([sharpe(r, PPY) for r in seeds]) for seeds in runs]


def _deflated(bt: Backtest, labels: list[str]) -> dict[str, Any]:
    """The deflated Sharpe ratio of the best label, every label counted as a trial."""
    trials = {label: moments(pooled(bt, label)[0]) for label in labels}
    finite = {k: v for k, v in trials.items() if math.isfinite(v[0])}
    deflated: dict[str, Any] = {"n_trials": len(labels)}
    if finite:
        best = max(finite, key=lambda k: finite[k][0])
        sr, skew, kurt = finite[best]
        var = float(np.var([v[0] for v in finite.values()], ddof=1)) if len(finite) > 1 else 0.0
        n_obs = len(pooled(bt, best)[0])
        deflated.update(
            best=best,
            sharpe_annual=sr * math.sqrt(PPY),
            sr0_annual=expected_max_sharpe(len(labels), var) * math.sqrt(PPY),
            deflated_sharpe=deflated_sharpe(sr, n_obs, len(labels), var, skew, kurt),
            n_obs=n_obs,
            skew=skew,
            kurtosis=kurt,
        )
    return deflated


def statistics(
    bt: Backtest, n_boot: int, rng: np.random.Generator, block_days: int = 20
) -> dict[str, Any]:
    """Figures with intervals, P(adapted beats X), deflated Sharpe, paired and per-asset figures.

    Per-strategy figures with task-bootstrap intervals, P(adapted beats X), the deflated Sharpe
    ratio, the paired block-bootstrap intervals over days, and per-asset and portfolio figures.

    Random draws: the task intervals draw from ``rng`` strategy after strategy in registry order;
    P(beats) and the paired intervals from two generators spawned from ``rng`` (spawning does not
    advance its stream). So a strategy's numbers never depend on strategies later in the
    registry, and a strategy added at the end of the registry changes no earlier one.
    """
    beats_rng, paired_rng = rng.spawn(2)
    labels = list(dict.fromkeys(a.label for a in bt.accounts))
    strategies = list(dict.fromkeys(a.strategy for a in bt.accounts))
    figures = {label: summary(*pooled(bt, label), PPY) for label in labels}
    stats_fns = {
        "sharpe": lambda r: sharpe(r, PPY),
        "annual_return": lambda r: annual_return(r, PPY),
        "max_drawdown": max_drawdown,
    }
    intervals: dict[str, dict[str, Any]] = {}
    scores: dict[str, list[np.ndarray]] = {}
    strata: list[str] = []
    for strategy in strategies:
        runs, strata = task_runs(bt, strategy)
        intervals[strategy] = {
            name: bootstrap_ci(runs, fn, rng, n_boot, strata=strata).as_dict()
            for name, fn in stats_fns.items()
        }
        scores[strategy] = task_sharpes(runs)
    p_beats = {
        other: prob_beats(
            scores[UNDER_TEST], scores[other], beats_rng, n_boot, strata=strata
        ).as_dict()
        for other in strategies
        if other != UNDER_TEST
    }
    return {
        "figures": figures,
        "intervals": intervals,
        "p_beats": p_beats,
        "deflated": _deflated(bt, labels),
        "paired": paired_intervals(bt, block_days, n_boot, paired_rng),
        "assets": asset_figures(bt),
    }


def reconciliation(bt: Backtest) -> dict[str, Any]:
    """Largest daily relative difference between backtrader's and the env's equity."""
    per: dict[str, float] = {}
    for acc in bt.accounts:
        diff = reconcile(acc.equity, acc.env_equity)
        per[acc.label] = max(per.get(acc.label, 0.0), diff)
    worst = max(per.values())
    weight_only = bt.costs["min_fee"] == 0 and bt.costs["impact_coef"] == 0
    return {
        "max_abs_rel_diff": worst,
        "tolerance": RECONCILE_TOLERANCE,
        "within_tolerance": bool(worst <= RECONCILE_TOLERANCE),
        "tolerance_applies": weight_only,
        "by_strategy": per,
        "rejected_orders": sum(a.rejected for a in bt.accounts),
        "method": (
            "same target weights through backtrader (orders sized at the next open, fractional "
            "shares, slippage in the fill price, commission from the cost model) and through the "
            "env simulator; max over every account and day of |E_bt / E_env - 1|"
        ),
        "native_order_target_percent": bt.native,
    }
