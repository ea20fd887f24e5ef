"""The adaptation protocols, as causal functions of one symbol's bars.

Both protocols are written once here and used by the backtest (``market_metarl.backtest``) and by
paper trading (``market_metarl.live``), so the positions of a paper account replayed day by day
equal those of the rolling backtest.

- **Rolling** (deployable): on adaptation days ``origin, origin + R, origin + 2R, ...`` the agent is
  reset and adapts on the last K days (the support ends at that day's close); it then acts every
  day, adaptation days included, until the next one. Nothing is known in hindsight.
- **Regime** (research): adapt on the first K days of a regime, trade the next H days. The regime
  boundaries are known in hindsight; reports say so.

Timing: the decision after the close of day ``t`` reads bars dated ``<= t`` only (the env's
observation builder over causal features), and is executed at the open of ``t+1``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from market_metarl.envs.accounting import drift, log_returns
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.observation import ObservationBuilder
from market_metarl.meta.contracts import Agent
from market_metarl.meta.episodes import Episode, cost_terms, market_arrays, position_slice
from market_metarl.meta.experiment import Experiment
from market_metarl.types import CostSpec, DataError


@dataclass(frozen=True)
class MarketView:
    """One symbol's decision days as arrays: row ``i`` is the close of ``dates[i]``.

    Attributes:
        dates: Decision days ``(D,)`` (each has a next day to execute on, except possibly the last).
        episode: The whole view as a one-task :class:`Episode` (observations with a zero position,
            opens/closes of each decision day plus the day after the last).
    """

    dates: pd.DatetimeIndex
    episode: Episode

    @property
    def days(self) -> int:
        """Number of decision days."""
        return len(self.dates)

    def row(self, when: dt.date | str | pd.Timestamp) -> int:
        """Row of the last decision day on or before ``when``."""
        i = int(self.dates.searchsorted(pd.Timestamp(when), side="right")) - 1
        if i < 0:
            raise DataError(f"no decision day on or before {pd.Timestamp(when).date()}")
        return i


def market_view(
    bars: pd.DataFrame,
    exp: Experiment,
    costs: CostSpec | None = None,
    symbol: str = "asset",
    live: bool = False,
    validate: bool = True,
) -> MarketView:
    """The view of a bars frame under the experiment's env settings (features, window, costs).

    The first decision day is the first whose observation window has every feature defined. In a
    backtest (``live=False``) the last bar is only an execution day: the last decision is made on
    the bar before it. Live, the last bar is a decision day too (today's close, executed at the
    next open, whose prices are unknown: they are NaN in the view and never read).
    ``validate=False`` skips re-checking bars that ``load_bars`` (a feed's history) already
    validated, as :meth:`~market_metarl.envs.market.TaskMarket.from_bars` allows.
    """
    market = TaskMarket.from_bars(
        {symbol: bars}, exp.env.features, exp.env.window, validate=validate
    )
    obs, opens, closes = market_arrays(market, exp.env)
    stop = market.last
    if live:
        obs = ObservationBuilder(
            market.features, exp.env.window, market.first, market.last, exp.env.include_time
        ).table()
        nan_row = np.full((1, opens.shape[1]), np.nan)
        opens, closes = np.vstack([opens, nan_row]), np.vstack([closes, nan_row])
        stop = market.last + 1
    rate, borrow = cost_terms(costs or exp.tasks.costs)
    dates = pd.DatetimeIndex(market.dates[market.first : stop])
    episode = Episode(
        obs=torch.from_numpy(obs).float().unsqueeze(0),
        opens=torch.from_numpy(opens).double().unsqueeze(0),
        closes=torch.from_numpy(closes).double().unsqueeze(0),
        position_slice=position_slice(market, exp.env),
        cost_rate=rate,
        borrow_daily=borrow,
    )
    return MarketView(dates, episode)


def next_day_log_return(ep: Episode, target: np.ndarray, held: np.ndarray, t: int) -> float:
    """Net log return of trading from ``held`` to ``target`` after the close of row ``t``.

    Filled at the open of ``t + 1`` and held to its close, with ``ep``'s costs and borrow.
    """
    opens, closes = ep.opens[0].numpy(), ep.closes[0].numpy()
    r = log_returns(
        target[None, None],
        opens[None, t : t + 2],
        closes[None, t : t + 2],
        ep.cost_rate,
        ep.borrow_daily,
        held[None, None],
    )
    return float(r.reshape(-1)[0])


def act_days(
    agent: Agent,
    ep: Episode,
    start: int,
    stop: int,
    held: np.ndarray,
    reward: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Step ``agent`` through decision days ``start..stop-1`` of a one-task episode.

    Args:
        agent: The (already adapted) agent.
        ep: One-task episode.
        start: First decision day.
        stop: One past the last decision day.
        held: Weights held at the close of ``start`` (after their drift).
        reward: Log return of the day ``start`` (fed to recurrent agents).

    Returns:
        ``(targets (n, N), log returns (n,))``: the return of a target is that of the next day.
    """
    n = ep.n_assets
    held = np.asarray(held, dtype=np.float64).reshape(n)
    targets, rets = [], []
    opens, closes = ep.opens[0].numpy(), ep.closes[0].numpy()
    obs_table = ep.obs[0].numpy()
    for t in range(start, stop):
        obs = obs_table[t].copy()
        obs[ep.position_slice] = held
        target = np.asarray(agent.act(obs, reward), dtype=np.float64).reshape(n)
        reward = next_day_log_return(ep, target, held, t)
        targets.append(target)
        rets.append(reward)
        held = drift(target[None], (closes[t + 1] / opens[t + 1])[None])[0]
    return np.array(targets).reshape(-1, n), np.array(rets)


def adapt_at(agent: Agent, ep: Episode, day: int, k_days: int) -> None:
    """Reset ``agent`` and adapt it on the K days ending at the close of decision day ``day``."""
    if day - k_days + 1 < 0:
        raise DataError(
            f"adapting at decision day {day} needs {k_days} days of history, only {day + 1} exist"
        )
    agent.init()
    with torch.enable_grad():
        agent.adapt(ep.window(day - k_days + 1, day))


def rolling_blocks(origin: int, stop: int, every: int) -> list[tuple[int, int]]:
    """The rolling protocol's blocks of rows ``origin..stop-1`` (the one place they are cut).

    Adaptation days are ``origin, origin + every, origin + 2 * every, ...``; a block is
    ``(adapt_row, stop_row)``: the agent adapts at the close of ``adapt_row`` and its decisions on
    rows ``adapt_row .. stop_row - 1`` are traded. Each block ends where the next begins; the last
    ends at ``stop``. The block of a day ``d >= origin`` is ``rolling_blocks(origin, d + 1,
    every)[-1]``.

    Args:
        origin: First adaptation row.
        stop: One past the last decision row.
        every: R, decision days between adaptations (>= 1).

    Returns:
        The blocks in order (empty when ``stop <= origin``).

    Raises:
        DataError: ``every`` is under 1.
    """
    if every < 1:
        raise DataError(f"adaptation interval must be >= 1 day, got {every}")
    return [(a, min(a + every, stop)) for a in range(origin, stop, every)]


def rolling_targets(
    agent: Agent,
    view: MarketView,
    start: int,
    stop: int,
    k_days: int,
    every: int,
) -> np.ndarray:
    """Target weights of decision days ``start..stop-1`` under the rolling protocol.

    Blocks are :func:`rolling_blocks` ``(start, stop, every)``; each block starts from the weights
    the previous block left (flat before ``start``).
    """
    blocks = rolling_blocks(start, stop, every)
    ep = view.episode
    n = ep.n_assets
    held, reward = np.zeros(n), 0.0
    out = np.zeros((max(stop - start, 0), n))
    for a, b in blocks:
        adapt_at(agent, ep, a, k_days)
        targets, rets = act_days(agent, ep, a, b, held, reward)
        out[a - start : b - start] = targets
        closes, opens = ep.closes[0].numpy(), ep.opens[0].numpy()
        held = drift(targets[-1][None], (closes[b] / opens[b])[None])[0]
        reward = float(rets[-1])
    return out


def rolling_target_at(
    agent: Agent,
    view: MarketView,
    origin: int,
    day: int,
    k_days: int,
    every: int,
    held_at_block: np.ndarray,
    reward_at_block: float,
) -> tuple[np.ndarray, int]:
    """The rolling protocol's target on decision day ``day`` alone (what paper trading runs).

    Recomputes the current block (the last of :func:`rolling_blocks` up to ``day``) from its
    adaptation day, starting from the weights actually held at that day's close, so a process
    that restarts every day reproduces :func:`rolling_targets` exactly.

    Returns:
        ``(target (N,), adaptation day of the block)``.
    """
    if day < origin:
        raise DataError(f"decision day {day} is before the rolling origin {origin}")
    a, _ = rolling_blocks(origin, day + 1, every)[-1]
    adapt_at(agent, view.episode, a, k_days)
    targets, _ = act_days(agent, view.episode, a, day + 1, held_at_block, reward_at_block)
    return targets[-1], a
