"""``evaluate_adaptation``: per-task results before and after adaptation (the regime protocol).

For each task: the agent is reset (``init``) and trades the query days zero-shot; then it is reset
again, adapts on the support days, and trades the same query days. Trading steps the agent one
day at a time with the env's observations (position after drift included) and its own realised
daily log returns, and prices it with the one accounting, so what is scored is what the env, the
backtest and paper trading would book.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from market_metarl.meta.contracts import Agent
from market_metarl.meta.episodes import Episode
from market_metarl.meta.protocol import act_days
from market_metarl.types import TRADING_DAYS_PER_YEAR


def sharpe(daily: np.ndarray, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """Annualised Sharpe ratio of daily log returns, zero risk-free rate (0 if flat)."""
    sd = float(np.std(daily, ddof=1)) if len(daily) > 1 else 0.0
    if sd < 1e-12:
        return 0.0
    return float(np.mean(daily) / sd * np.sqrt(periods_per_year))


def bootstrap_mean(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of ``(seeds, tasks)``, resampling tasks within seeds."""
    rng = np.random.default_rng(seed)
    s, t = x.shape
    idx = rng.integers(0, t, size=(n_boot, s, t))
    means = x[np.arange(s)[None, :, None], idx].mean(axis=(1, 2))
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass(frozen=True)
class TaskResult:
    """One task's query-period result for one agent, before and after adaptation."""

    task: int
    pre_sharpe: float
    post_sharpe: float
    pre_return: float
    post_return: float
    post_daily: np.ndarray
    post_weights: np.ndarray


def trade(agent: Agent, query: Episode, row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Step ``agent`` through the query days of task ``row``, starting flat.

    Returns:
        ``(weights (D, N), log returns (D,))``, through the protocols' one day-stepping loop.
    """
    ep = query.select([row])
    return act_days(agent, ep, 0, ep.days, np.zeros(ep.n_assets))


def evaluate_adaptation(
    agent: Agent,
    episode: Episode,
    k_days: int,
    horizon: int,
    tasks: Sequence[int] | None = None,
) -> list[TaskResult]:
    """Adapt on the first ``k_days`` of each task and trade the next ``horizon`` days.

    Args:
        agent: Any :class:`Agent`.
        episode: B tasks with at least ``k_days - 1 + horizon`` decision days each.
        k_days: Support days (the decisions of days ``0..k-2`` earn days ``1..k-1``).
        horizon: Query days traded (decisions from the close of the last support day).
        tasks: Rows of ``episode`` to evaluate (default: all).

    Returns:
        One :class:`TaskResult` per task.
    """
    if k_days < 2:
        raise ValueError(f"k_days must be >= 2 (one support decision and its day), got {k_days}")
    if k_days - 1 + horizon > episode.days:
        raise ValueError(
            f"episode has {episode.days} decision days, k_days - 1 + horizon = "
            f"{k_days - 1 + horizon} needed"
        )
    support_all = episode.window(0, k_days - 1)
    query_all = episode.window(k_days - 1, k_days - 1 + horizon)
    results = []
    for row in tasks if tasks is not None else range(episode.batch):
        agent.init()
        _, pre = trade(agent, query_all, row)
        agent.init()
        with torch.enable_grad():
            agent.adapt(support_all.select([row]))
        w_post, post = trade(agent, query_all, row)
        results.append(
            TaskResult(
                task=row,
                pre_sharpe=sharpe(pre),
                post_sharpe=sharpe(post),
                pre_return=float(pre.sum()),
                post_return=float(post.sum()),
                post_daily=post,
                post_weights=w_post,
            )
        )
    return results
