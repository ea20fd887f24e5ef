"""B tasks stepped at once on numpy arrays: the batched env.

Gives, on the same actions, the same rewards, equity and observations as B separate
:class:`TradingEnv` (or :class:`PortfolioEnv`) instances (a test checks it to 1e-12), because it runs
the same pieces: :func:`~market_metarl.envs.simulator.rebalance_and_mark` on ``(B, N)`` arrays, the
same cost model, reward components and feature windows (gathered by index from one strided view).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from market_metarl.envs.actions import ActionMap
from market_metarl.envs.costs import CostModel
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.observation import BatchObservationBuilder, ObservationBuilder
from market_metarl.envs.rewards import make_reward
from market_metarl.envs.simulator import MarketSimulator
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import LOG_RETURN_FLOOR, check_task_fits
from market_metarl.types import ConfigError, CostSpec, TaskSpec


def _pad_rows(arrays: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stack ``(T_b, ...)`` arrays to ``(B, length, ...)``, repeating each one's last row."""
    out = np.empty((len(arrays), length, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for b, a in enumerate(arrays):
        out[b, : len(a)] = a
        out[b, len(a) :] = a[-1]
    return out


class BatchedTradingEnv(VectorEnv):
    """B independent tasks (each its own bars) stepped together as numpy arrays.

    Tasks may differ in length and dates: their arrays are padded at the end (repeating the last
    bar) to a common length, and each task's episode ends at its own last day; the padding is only
    ever read by the discarded step of a book that is being reset. All tasks need the same number
    of assets, the same observation size and the same costs (pass ``costs`` to override).

    Autoreset: ``metadata["autoreset_mode"] = AutoresetMode.NEXT_STEP`` (Gymnasium's default).
    When task ``b``'s episode ends at step k, step k returns its final observation; at step k+1
    its action is ignored and it is reset, returning the first observation of a new episode with
    reward 0 and ``terminated = truncated = False``.

    ``infos`` holds arrays ``date`` (``datetime64[D]``, the close just marked), ``equity``,
    ``position`` (``(B, N)`` weights at that close), ``cost`` and ``turnover``, each with
    Gymnasium's mask ``_date``, ``_equity``, ... (all True: every task reports every key), so
    wrappers such as ``gymnasium.wrappers.vector.DictInfoToList`` read them.

    Args:
        tasks: TaskSpecs (bars loaded through ``data.sources``) or prepared :class:`TaskMarket`.
        env_spec: Env settings shared by all tasks (default settings if None).
        costs: Costs for every task (default: the tasks' own, which must then agree).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        tasks: Sequence[TaskSpec | TaskMarket],
        env_spec: EnvSpec | None = None,
        costs: CostSpec | None = None,
    ) -> None:
        """Load every task (each symbol read once), check they fit together, and set up the arrays.

        Raises:
            ConfigError: No tasks, tasks with different costs (without ``costs``) or asset counts, or a
                task the settings cannot run on (:func:`check_task_fits`).
        """
        spec = env_spec or EnvSpec()
        if not tasks:
            raise ConfigError("a batched env needs at least one task")
        loaded: dict[str, pd.DataFrame] = {}
        markets = [
            TaskMarket.from_tasks(t, spec.features, spec.window, loaded)
            if isinstance(t, TaskSpec)
            else t
            for t in tasks
        ]
        if costs is None:
            specs = {t.costs for t in tasks if isinstance(t, TaskSpec)} or {CostSpec()}
            if len(specs) > 1:
                raise ConfigError(
                    "the tasks of a batched env have different costs; pass costs= to use one"
                )
            costs = specs.pop()
        for m in markets:
            check_task_fits(m, spec, costs)
        if len({m.n_assets for m in markets}) != 1:
            raise ConfigError("every task of a batched env must trade the same number of assets")
        self.env_spec, self.cost_spec, self.markets = spec, costs, markets
        self.num_envs = len(markets)
        self._setup_arrays(markets, spec, costs)

    @classmethod
    def from_bars(
        cls,
        bars: Sequence[pd.DataFrame | Mapping[str, pd.DataFrame]],
        env_spec: EnvSpec | None = None,
        costs: CostSpec | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A batched env with one task per bars frame (same ``start``/``end`` rule as TradingEnv).

        ``kwargs`` go to the constructor (a subclass's own options, e.g. ``kernel=``).
        """
        spec = env_spec or EnvSpec()
        markets = [
            TaskMarket.from_bars(b, spec.features, spec.window, start=start, end=end) for b in bars
        ]
        return cls(markets, spec, costs, **kwargs)

    def _setup_arrays(self, markets: list[TaskMarket], spec: EnvSpec, costs: CostSpec) -> None:
        length = max(len(m.dates) for m in markets) + 1
        self.cost_model = CostModel.from_spec(costs)
        self.sim = MarketSimulator(
            _pad_rows([m.opens for m in markets], length),
            _pad_rows([m.closes for m in markets], length),
            self.cost_model,
            spec.initial_cash,
            _pad_rows([m.inv_adv for m in markets], length),
        )
        self.dates = _pad_rows([m.dates for m in markets], length).reshape(-1)
        self._date_base = np.arange(self.num_envs) * length
        builders = [
            ObservationBuilder(m.features, spec.window, m.first, m.last, spec.include_time)
            for m in markets
        ]
        self.observations = BatchObservationBuilder(builders)
        self.actions = ActionMap(spec, markets[0].n_assets)
        self.single_observation_space = builders[0].space
        self.single_action_space = self.actions.space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.reward_fn = make_reward(spec)
        self.first = np.array([m.first for m in markets], dtype=np.int64)
        self.last = np.array([m.last for m in markets], dtype=np.int64)
        self._rows = np.arange(self.num_envs)
        self._ruin_level = spec.ruin_equity * spec.initial_cash
        self._max_dd = spec.max_drawdown if spec.max_drawdown < 1.0 else np.inf
        self._peak = np.full(self.num_envs, spec.initial_cash)
        self._drawdown = np.zeros(self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._rngs: list[np.random.Generator] = []
        self._started = False

    # -- episode bookkeeping ----------------------------------------------------------------

    def _start_rows(self, rows: np.ndarray) -> None:
        """Fresh episodes for the books in the bool mask ``rows``."""
        starts = self.first.copy()
        if self.env_spec.random_start:
            for b in np.flatnonzero(rows):
                span = int(self.last[b] - self.first[b]) // 2
                starts[b] += int(self._rngs[b].integers(0, span + 1))
        self.sim.reset(starts[rows], rows)
        self.reward_fn.reset_rows(rows)
        self._peak[rows] = self.env_spec.initial_cash
        self._drawdown[rows] = 0.0
        self._needs_reset[rows] = False

    def _infos(self, cost: np.ndarray, turnover: np.ndarray, position: np.ndarray) -> dict:
        date = self.dates.take(self._date_base + self.sim.t)
        return self._info_dict(date, self.sim.equity.copy(), position, cost, turnover)

    def _info_dict(
        self,
        date: np.ndarray,
        equity: np.ndarray,
        position: np.ndarray,
        cost: np.ndarray,
        turnover: np.ndarray,
    ) -> dict[str, Any]:
        """The infos dict, with Gymnasium's ``_key`` masks (every task has every key, every step)."""
        infos = {"date": date, "equity": equity, "position": position, "cost": cost}
        infos["turnover"] = turnover
        masks = np.ones((len(infos), self.num_envs), dtype=bool)
        return infos | {f"_{key}": mask for key, mask in zip(list(infos), masks, strict=True)}

    # -- gymnasium API ----------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every task (or those in ``options["reset_mask"]``).

        ``seed``: an int seeds task ``b`` with ``seed + b`` (as Gymnasium's SyncVectorEnv does),
        or a list gives one seed per task; the seeds drive ``random_start`` only.
        """
        if isinstance(seed, int):
            seed = [seed + b for b in range(self.num_envs)]
        if seed is not None or not self._rngs:
            seeds = list(seed) if seed is not None else [None] * self.num_envs
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} tasks")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        if not self._started:
            self.reward_fn.reset(self.num_envs)
            self._started = True
        self._start_rows(mask)
        position = self.sim.weights()
        obs = self.observations.build_batch(self.sim.t, position)
        zeros = np.zeros(self.num_envs)
        return obs, self._infos(zeros, zeros.copy(), position)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every task; tasks whose episode ended at the last step are reset instead."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        resetting = self._needs_reset.copy()
        target = self.actions.to_weights(actions)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = self.sim.step(target)
            log_ret = np.log(np.where(step.growth > 0, step.growth, 1.0))
        log_ret[~(step.growth > 0)] = LOG_RETURN_FLOOR
        prev_dd = self._drawdown
        self._peak = np.maximum(self._peak, step.equity)
        self._drawdown = 1.0 - step.equity / self._peak
        reward = self.reward_fn(log_ret, self._drawdown, prev_dd)
        terminated = (step.equity < self._ruin_level) | (self._drawdown > self._max_dd)
        truncated = self.sim.t >= self.last
        position, cost, turnover = step.weights, step.cost, step.turnover
        if resetting.any():
            self._start_rows(resetting)
            reward = np.where(resetting, 0.0, reward)
            terminated &= ~resetting
            truncated &= ~resetting
            position = np.where(resetting[:, None], 0.0, position)
            cost = np.where(resetting, 0.0, cost)
            turnover = np.where(resetting, 0.0, turnover)
        self._needs_reset = terminated | truncated
        obs = self.observations.build_batch(self.sim.t, position)
        return obs, reward, terminated, truncated, self._infos(cost, turnover, position)
