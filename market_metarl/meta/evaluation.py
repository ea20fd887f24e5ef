"""``evaluate_adaptation``: per-task results before and after adaptation (the regime protocol).

For each task: the agent is reset (``init``) and trades the query days zero-shot; then it is reset
again, adapts on the support days, and trades the same query days. Trading steps the agent one
day at a time with the env's observations (position after drift included) and its own realised
daily log returns, and prices it with the one accounting, so what is scored is what the env, the
backtest and paper trading would book. Scores are the one Sharpe ratio
(:func:`market_metarl.stats.sharpe`, simple daily returns) and intervals the one bootstrap
(:func:`market_metarl.stats.bootstrap_ci`), as in the backtest's ``metrics.json``.

:func:`validation_score` (the mean adapted Sharpe over tasks) is what a sweep ranks settings by
and what ``[train] select_on = "val"`` selects checkpoints by; :func:`adapted_sharpes` computes
it in one batch for gradient and recurrent agents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from market_metarl.meta.agents import GradientAgent, RL2Agent
from market_metarl.meta.contracts import Agent, check_adapt_days
from market_metarl.meta.episodes import Episode
from market_metarl.meta.protocol import act_days
from market_metarl.meta.rollout import episode_log_returns, gru_rollout, mlp_weights
from market_metarl.stats import bootstrap_ci, sharpe
from market_metarl.types import TRADING_DAYS_PER_YEAR


def task_sharpe(log_daily: np.ndarray, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """The score of one task: :func:`market_metarl.stats.sharpe` of its daily returns.

    Args:
        log_daily: Daily **log** returns of the book (what the accounting returns); they are
            converted to simple returns (``expm1``) so the score is the Sharpe ratio the backtest
            reports for the same days (risk-free rate 0, ``ddof=1``).
        periods_per_year: Periods in a year.

    Returns:
        The annualised Sharpe ratio, or 0 where it is undefined (a flat book: no variance, or
        fewer than two days), so a task where the agent never trades scores like no skill and
        means over tasks stay finite.
    """
    score = sharpe(np.expm1(np.asarray(log_daily, dtype=np.float64)), periods_per_year)
    return score if math.isfinite(score) else 0.0


def bootstrap_mean(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of scores ``x`` ``(seeds, tasks)``.

    The one bootstrap (:func:`market_metarl.stats.bootstrap_ci`, as in the backtest) on one score
    per task and seed: tasks are resampled with
    replacement, one seed's score is drawn within each drawn task, and the replicate is the mean
    of the draw; the interval is the 2.5-97.5% percentile interval of ``n_boot`` replicates from
    ``numpy.random.default_rng(seed)``.
    """
    scores = np.asarray(x, dtype=np.float64)
    runs = [[scores[s, t : t + 1] for s in range(scores.shape[0])] for t in range(scores.shape[1])]
    rng = np.random.default_rng(seed)
    ci = bootstrap_ci(runs, lambda v: float(np.mean(v)), rng, n_boot, level=0.95)
    return ci.low, ci.high


@dataclass(frozen=True)
class TaskResult:
    """One task's query-period result for one agent, before and after adaptation.

    Attributes:
        task: Row of the episode.
        pre_sharpe: :func:`task_sharpe` of the query days traded zero-shot.
        post_sharpe: :func:`task_sharpe` of the query days traded after adapting.
        pre_return: Log return of the query days, zero-shot (sum of daily log returns).
        post_return: Log return of the query days after adapting.
        post_daily: Daily log returns after adapting ``(horizon,)``.
        post_weights: Target weights after adapting ``(horizon, N)``.
    """

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
    zero_shot: bool = True,
) -> list[TaskResult]:
    """Adapt on the first ``k_days`` of each task and trade the next ``horizon`` days.

    Args:
        agent: Any :class:`Agent`.
        episode: B tasks with at least ``k_days - 1 + horizon`` decision days each.
        k_days: Support days (the decisions of days ``0..k-2`` earn days ``1..k-1``).
        horizon: Query days traded (decisions from the close of the last support day).
        tasks: Rows of ``episode`` to evaluate (default: all).
        zero_shot: Also trade the query days before adapting (False: the ``pre_`` fields are
            NaN, for a caller that reads only the adapted results at half the cost).

    Returns:
        One :class:`TaskResult` per task.
    """
    support_all, query_all = _support_and_query(episode, k_days, horizon)
    results = []
    for row in tasks if tasks is not None else range(episode.batch):
        pre = np.full(1, np.nan)
        if zero_shot:
            agent.init()
            _, pre = trade(agent, query_all, row)
        agent.init()
        with torch.enable_grad():
            agent.adapt(support_all.select([row]))
        w_post, post = trade(agent, query_all, row)
        results.append(
            TaskResult(
                task=row,
                pre_sharpe=task_sharpe(pre) if zero_shot else math.nan,
                post_sharpe=task_sharpe(post),
                pre_return=float(pre.sum()),
                post_return=float(post.sum()),
                post_daily=post,
                post_weights=w_post,
            )
        )
    return results


def _support_and_query(episode: Episode, k_days: int, horizon: int) -> tuple[Episode, Episode]:
    """The support days (first ``k_days - 1`` decisions) and the next ``horizon`` query days.

    Raises:
        ConfigError: ``k_days`` under 2.
        ValueError: The episode is shorter than ``k_days - 1 + horizon`` decision days.
    """
    check_adapt_days(k_days, "k_days")
    if k_days - 1 + horizon > episode.days:
        raise ValueError(
            f"episode has {episode.days} decision days, k_days - 1 + horizon = "
            f"{k_days - 1 + horizon} needed"
        )
    return episode.window(0, k_days - 1), episode.window(k_days - 1, k_days - 1 + horizon)


def adapted_sharpes(agent: Agent, episode: Episode, k_days: int, horizon: int) -> np.ndarray:
    """Each task's :func:`task_sharpe` after adapting: ``post_sharpe`` of :func:`evaluate_adaptation`.

    Gradient agents (MAML, pooled) and recurrent ones (RL^2) are scored for every task at once:
    the supports adapt as one batch (``adapt_many``, which ``adapt`` runs on a batch of one; the
    GRU over every support) and the query days, each from a flat book, are rolled out side by
    side and priced by the one accounting (:mod:`~market_metarl.meta.rollout`): the returns of
    the day-by-day path up to float rounding (a test bounds the gap). Other agents go through
    :func:`evaluate_adaptation` without its zero-shot half.

    Returns:
        ``(tasks,)`` annualised Sharpe ratios of the query days, in the episode's row order.
    """
    support, query = _support_and_query(episode, k_days, horizon)
    daily = _batched_query_returns(agent, support, query)
    if daily is None:
        results = evaluate_adaptation(agent, episode, k_days, horizon, zero_shot=False)
        return np.array([r.post_sharpe for r in results])
    return np.array([task_sharpe(row) for row in daily.numpy()])


def _batched_query_returns(agent: Agent, support: Episode, query: Episode) -> torch.Tensor | None:
    """Daily log returns ``(B, H)`` of the query days after adapting, all tasks at once.

    None for an agent with no batched path. The agent is reset first and left reset.
    """
    agent.init()
    if isinstance(agent, GradientAgent):
        with torch.enable_grad():
            params = agent.adapt_many(support)
        with torch.no_grad():
            weights = mlp_weights(agent.policy, params, query, per_task=True)
            return episode_log_returns(query, weights)
    if isinstance(agent, RL2Agent):
        with torch.no_grad():
            # RL2Agent.adapt on every support; then act from a flat book, the state carried over
            w, _, h, last_r = gru_rollout(agent.policy, None, support)
            return gru_rollout(agent.policy, None, query, h, w[:, -1].float(), last_r)[1]
    return None


def validation_score(agent: Agent, episode: Episode, k_days: int, horizon: int) -> float:
    """The mean over tasks of the adapted Sharpe ratio of the query days (:func:`adapted_sharpes`).

    What a sweep ranks settings by and ``[train] select_on = "val"`` selects checkpoints by.
    """
    return float(np.mean(adapted_sharpes(agent, episode, k_days, horizon)))
