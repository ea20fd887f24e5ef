"""Task data as tensors for the differentiable (pathwise) objective.

An :class:`Episode` holds, for B tasks over D decision days, the env observations with a zero
position (the env's :class:`~market_metarl.envs.observation.ObservationBuilder` table, so training
sees exactly what the env, the backtest and the live loop see) and the opens/closes from the first
decision day to the day after the last one. Because prices do not react to our trades, replaying a
policy on these arrays gives the PnL the env would give, differentiably in the policy's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from market_metarl.envs.market import TaskMarket
from market_metarl.envs.observation import ObservationBuilder
from market_metarl.envs.spec import EnvSpec
from market_metarl.types import TRADING_DAYS_PER_YEAR, CostSpec, DataError


@dataclass(frozen=True)
class Episode:
    """B aligned task windows of D decision days.

    Attributes:
        obs: Observations ``(B, D, obs_dim)`` after each decision day's close, zero position.
        opens: Opens ``(B, D+1, N)`` of the decision days and the day after the last.
        closes: Closes ``(B, D+1, N)``, same days.
        position_slice: Where the held weights go in an observation.
        cost_rate: Proportional trading cost per unit of traded weight.
        borrow_daily: Daily cost per unit of short weight.
    """

    obs: torch.Tensor
    opens: torch.Tensor
    closes: torch.Tensor
    position_slice: slice
    cost_rate: float = 0.0
    borrow_daily: float = 0.0

    @property
    def days(self) -> int:
        """D, the decision days of each task window."""
        return int(self.obs.shape[1])

    @property
    def batch(self) -> int:
        """B, the task windows stacked."""
        return int(self.obs.shape[0])

    @property
    def n_assets(self) -> int:
        """N, the assets traded in each window."""
        return int(self.opens.shape[-1])

    def window(self, start: int, stop: int) -> Episode:
        """Decision days ``start..stop-1`` (prices through day ``stop``)."""
        if not 0 <= start < stop <= self.days:
            raise ValueError(f"window {start}:{stop} outside 0:{self.days}")
        return replace(
            self,
            obs=self.obs[:, start:stop],
            opens=self.opens[:, start : stop + 1],
            closes=self.closes[:, start : stop + 1],
        )

    def select(self, rows: torch.Tensor | Sequence[int]) -> Episode:
        """A sub-batch of tasks."""
        idx = torch.as_tensor(rows, dtype=torch.long)
        return replace(self, obs=self.obs[idx], opens=self.opens[idx], closes=self.closes[idx])


@dataclass(frozen=True)
class Windows:
    """How a task window is split: ``adapt_days`` support days, then ``horizon`` query days."""

    adapt_days: int
    horizon: int

    @property
    def days(self) -> int:
        """Decision days of a whole window (the last support day's decision is the first query's)."""
        return self.adapt_days - 1 + self.horizon

    def support(self, ep: Episode) -> Episode:
        """The support days of a window (decisions ``0..K-2``, their returns through day K-1)."""
        return ep.window(0, self.adapt_days - 1)

    def query(self, ep: Episode) -> Episode:
        """The query days of a window."""
        return ep.window(self.adapt_days - 1, self.days)


def next_day_returns(ep: Episode) -> torch.Tensor:
    """Close-to-close log return of the day after each decision day, ``(B, D, N)`` float32.

    The decision after the close of day ``t`` reads ``obs[:, t]``; this is what the market does
    next (the ``log_ret`` feature of day ``t+1``).
    """
    return torch.log(ep.closes[:, 1:] / ep.closes[:, :-1]).float()


def return_indices(env: EnvSpec, n_assets: int) -> list[int]:
    """Observation index of each asset's ``log_ret`` on the decision day (always observed)."""
    return [feature_index(env, n_assets, "log_ret", asset=i) for i in range(n_assets)]


def cost_terms(costs: CostSpec) -> tuple[float, float]:
    """``(cost_rate, borrow_daily)`` of a CostSpec, as the pathwise objective uses them.

    The minimum fee and the market impact depend on the account's size, not on weights alone; the
    env and the backtest charge them, the training objective does not.
    """
    return costs.proportional_rate, costs.borrow_bps_annual * 1e-4 / TRADING_DAYS_PER_YEAR


def market_arrays(market: TaskMarket, spec: EnvSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(obs (D, dim), opens (D+1, N), closes (D+1, N))`` of a whole task."""
    builder = ObservationBuilder(
        market.features, spec.window, market.first, market.last, spec.include_time
    )
    table = builder.table()[:-1]  # the last day's close is marked, no decision follows it
    rows = slice(market.first, market.last + 1)
    return table, market.opens[rows], market.closes[rows]


def position_slice(market: TaskMarket, spec: EnvSpec) -> slice:
    """Where the held weights sit in an env observation (see the observation builder's layout)."""
    return slice(0, market.n_assets)


def feature_index(spec: EnvSpec, n_assets: int, name: str, asset: int = 0, lag: int = 0) -> int:
    """Position in an env observation of feature ``name`` of ``asset``, ``lag`` days back.

    The observation's layout: N held weights, the time feature when ``include_time``, then the
    window ``(W, N, F)`` flattened, oldest day first (``lag=0`` is the decision day itself).

    Raises:
        KeyError: ``name`` is not an observed feature, or ``lag`` is outside the window.
    """
    names = spec.features.names()
    if name not in names:
        raise KeyError(f"feature {name!r} is not observed; observed features: {names}")
    if not 0 <= lag < spec.window:
        raise KeyError(f"lag {lag} outside the window of {spec.window} days")
    state = n_assets + int(spec.include_time)
    day = spec.window - 1 - lag
    return state + (day * n_assets + asset) * len(names) + names.index(name)


def episode_from_markets(
    markets: Sequence[TaskMarket],
    spec: EnvSpec,
    costs: CostSpec,
    days: int | None = None,
    offsets: Sequence[int] | None = None,
) -> Episode:
    """Stack B tasks into an :class:`Episode` of ``days`` decision days each.

    Args:
        markets: The tasks' arrays (same number of assets).
        spec: Env settings (window, include_time).
        costs: Costs of the tasks.
        days: Decision days per task (default: the shortest task's).
        offsets: First decision day of each task's window (default 0).

    Raises:
        DataError: A task is shorter than ``days + offset`` decision days.
    """
    if not markets:
        raise DataError("no tasks to build an episode from")
    arrays = [market_arrays(m, spec) for m in markets]
    if days is None:
        days = min(a[0].shape[0] for a in arrays)
    offsets = list(offsets) if offsets is not None else [0] * len(markets)
    obs, opens, closes = [], [], []
    for (o_tab, op, cl), off, m in zip(arrays, offsets, markets, strict=True):
        if off + days > o_tab.shape[0]:
            raise DataError(
                f"task {', '.join(m.symbols)} from {m.date(m.first)} has {o_tab.shape[0]} decision "
                f"days, {off + days} needed; lower adapt_days/horizon or use longer tasks"
            )
        obs.append(o_tab[off : off + days])
        opens.append(op[off : off + days + 1])
        closes.append(cl[off : off + days + 1])
    rate, borrow = cost_terms(costs)
    return Episode(
        obs=torch.from_numpy(np.stack(obs)).float(),
        opens=torch.from_numpy(np.stack(opens)).double(),
        closes=torch.from_numpy(np.stack(closes)).double(),
        position_slice=position_slice(markets[0], spec),
        cost_rate=rate,
        borrow_daily=borrow,
    )


class TaskPool:
    """The tasks of one split as tensors, for sampling training windows.

    Args:
        markets: One :class:`TaskMarket` per task (same number of assets).
        spec: Env settings.
        costs: Costs shared by the tasks.
    """

    def __init__(self, markets: Sequence[TaskMarket], spec: EnvSpec, costs: CostSpec) -> None:
        """Build every task's observation table and prices once (see the class docstring).

        Raises:
            DataError: ``markets`` is empty.
        """
        if not markets:
            raise DataError("no tasks in the pool; check the config's splits and symbols")
        self.arrays = [market_arrays(m, spec) for m in markets]
        self.lengths = np.array([a[0].shape[0] for a in self.arrays])
        self.position = position_slice(markets[0], spec)
        self.cost_rate, self.borrow_daily = cost_terms(costs)
        self.obs_dim = int(self.arrays[0][0].shape[1])
        self.n_assets = markets[0].n_assets

    def __len__(self) -> int:
        """Number of tasks in the pool."""
        return len(self.arrays)

    def eligible(self, days: int) -> np.ndarray:
        """Indices of tasks with at least ``days`` decision days."""
        return np.flatnonzero(self.lengths >= days)

    def require(self, days: int) -> np.ndarray:
        """:meth:`eligible`, or a :class:`DataError` when no task has ``days`` decision days."""
        pool = self.eligible(days)
        if len(pool) == 0:
            raise DataError(
                f"no task has {days} decision days (longest: {self.lengths.max()}); "
                "lower adapt_days/horizon or raise regimes.min_task_days"
            )
        return pool

    def sample(
        self, batch: int, days: int, rng: np.random.Generator, from_start: bool = False
    ) -> Episode:
        """``batch`` random windows of ``days`` decision days from the tasks long enough.

        Tasks are drawn with ``rng``, without replacement when there are at least ``batch``
        eligible ones; each window starts on a random day of its task (its first day with
        ``from_start``).

        Raises:
            DataError: No task has ``days`` decision days.
        """
        pool = self.require(days)
        rows = rng.choice(pool, size=batch, replace=len(pool) < batch)
        offsets = [
            0 if from_start else int(rng.integers(0, self.lengths[r] - days + 1)) for r in rows
        ]
        return self.episode([int(r) for r in rows], days, offsets)

    def episode(
        self, rows: Sequence[int], days: int, offsets: Sequence[int] | None = None
    ) -> Episode:
        """The windows of ``days`` decision days of tasks ``rows``, in that order.

        Args:
            rows: Task indices into the pool (repeats allowed).
            days: Decision days per window; each window carries ``days + 1`` days of prices.
            offsets: First decision day of each window in its task (default: 0 for all); each
                must leave ``days`` decision days in its task (not checked here: see
                :meth:`eligible`).
        """
        offsets = list(offsets) if offsets is not None else [0] * len(rows)
        obs = np.stack(
            [self.arrays[r][0][o : o + days] for r, o in zip(rows, offsets, strict=True)]
        )
        opens = np.stack(
            [self.arrays[r][1][o : o + days + 1] for r, o in zip(rows, offsets, strict=True)]
        )
        closes = np.stack(
            [self.arrays[r][2][o : o + days + 1] for r, o in zip(rows, offsets, strict=True)]
        )
        return Episode(
            obs=torch.from_numpy(obs).float(),
            opens=torch.from_numpy(opens).double(),
            closes=torch.from_numpy(closes).double(),
            position_slice=self.position,
            cost_rate=self.cost_rate,
            borrow_daily=self.borrow_daily,
        )

    def all_observations(self) -> torch.Tensor:
        """Every decision day's observation, ``(sum D, obs_dim)``, to fit the input normaliser."""
        return torch.from_numpy(np.concatenate([a[0] for a in self.arrays])).float()
