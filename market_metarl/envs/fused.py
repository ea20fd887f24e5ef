"""The batched env with a fused step: numba's one loop when installed, fewer numpy calls otherwise.

:class:`FusedTradingEnv` is :class:`~market_metarl.envs.vector_env.BatchedTradingEnv` (same
constructor, spaces, reset, autoreset and infos) with another ``step``: the reference step makes
some forty whole-array numpy calls, each paying numpy's per-call overhead and a pass over memory;
here the whole step is

- ``kernel="numba"``: one compiled loop over the books (:mod:`market_metarl.envs.fused_kernel`,
  needs the ``fast`` extra: ``pip install 'market-metarl[fast]'``);
- ``kernel="numpy"``: the same bookkeeping in numpy, written with ``out=`` into buffers allocated
  once and with the autoreset applied in place (no ``np.where`` copies);
- ``kernel="auto"`` (default): numba when it imports, else numpy.

Both give the reference step's observations, rewards, terminations and infos on the same actions
(``tests/envs/test_fused_env.py`` checks it over many episodes: bit for bit on one asset, to 1e-12
on several). The reference class stays what it is, the spec the fused step is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from market_metarl.envs.market import TaskMarket
from market_metarl.envs.rewards import DifferentialSharpe, DrawdownPenalised
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import LOG_RETURN_FLOOR
from market_metarl.envs.vector_env import BatchedTradingEnv
from market_metarl.types import ConfigError, CostSpec, TaskSpec

Kernel = Literal["auto", "numba", "numpy"]
KERNELS: tuple[str, ...] = ("auto", "numba", "numpy")


class FusedTradingEnv(BatchedTradingEnv):
    """:class:`BatchedTradingEnv` whose ``step`` is one fused pass (numba) or fewer numpy calls.

    Args:
        tasks: As for :class:`BatchedTradingEnv`.
        env_spec: As for :class:`BatchedTradingEnv`.
        costs: As for :class:`BatchedTradingEnv`.
        kernel: ``"auto"``, ``"numba"`` or ``"numpy"`` (see the module docstring).

    Attributes:
        kernel: The kernel in use, ``"numba"`` or ``"numpy"``.
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec | TaskMarket],
        env_spec: EnvSpec | None = None,
        costs: CostSpec | None = None,
        kernel: Kernel = "auto",
    ) -> None:
        """Build the reference env's arrays, then pick the kernel and lay out its arguments.

        Raises:
            ConfigError: An unknown ``kernel``, or ``kernel="numba"`` without numba installed.
        """
        if kernel not in KERNELS:
            raise ConfigError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        super().__init__(tasks, env_spec, costs)
        from market_metarl.envs.fused_kernel import compiled_kernel

        self._compiled = None if kernel == "numpy" else compiled_kernel()
        if kernel == "numba" and self._compiled is None:
            raise ConfigError(
                "kernel='numba' needs numba: pip install 'market-metarl[fast]' (or use kernel='auto')"
            )
        self.kernel = "numpy" if self._compiled is None else "numba"
        self._prepare()

    def _prepare(self) -> None:
        sim, obs, spec, cm = self.sim, self.observations, self.env_spec, self.cost_model
        b, n = self.num_envs, self.actions.n_assets
        rates = np.array([cm.rate, cm.fee_rate, cm.min_fee, cm.borrow_daily, cm.impact_coef])
        levels = np.asarray(self.actions.levels or (0.0,), dtype=np.float64)
        # what one book's step reads of a day, side by side (fewer cache lines than 3 arrays)
        parts = [sim.opens, sim.closes]
        if sim.inv_adv is not None:  # the trade on day t pays impact on day t-1's volume
            parts.append(np.concatenate([sim.inv_adv[:, :1], sim.inv_adv[:, :-1]], axis=1))
        days = self.dates.view(np.int64).astype(np.float64).reshape(b, -1, 1)
        prices = np.ascontiguousarray(np.concatenate([*parts, days], axis=2))
        # the flat buffer under the strided windows view (BatchObservationBuilder's layout)
        item = obs.windows.itemsize
        block, width = obs.windows.strides[0] // item, obs.windows.strides[1] // item
        flat = np.lib.stride_tricks.as_strided(obs.windows, (b * block,), (item,), writeable=False)
        self._params = (prices, rates, levels, flat, obs.first, obs.span, self.last, block, width)
        code = {"log_return": 0, "drawdown_penalised": 1, "differential_sharpe": 2}[spec.reward]
        param = spec.drawdown_penalty if code == 1 else spec.dsr_eta if code == 2 else 0.0
        self._cfg = (self.actions.low, self.actions.max_leverage, float(code), float(param))
        self._cfg += (float(spec.initial_cash), float(self._ruin_level), float(self._max_dd))  # type: ignore[assignment]
        self._cfg += (float(obs.include_time),)  # type: ignore[assignment]
        self._scratch = (np.zeros(n), np.zeros(n))
        self._no_moments = np.zeros(b)
        # numpy kernel: buffers reused by every step (never returned)
        self._buf: dict[str, np.ndarray] = {
            k: np.empty((b, n)) for k in ("open", "close", "pre", "tmp", "shares")
        }
        self._buf |= {k: np.empty((b, 1)) for k in ("eq_open", "sum", "cost", "turn", "cash")}
        self._buf |= {k: np.empty(b) for k in ("growth", "logret", "prev_dd", "x")}
        self._buf["flat"] = np.empty(b, dtype=np.int64)

    def _starts(self) -> np.ndarray:
        """The day each book being reset this step starts at (``first``, or drawn for random starts)."""
        if not (self.env_spec.random_start and self._needs_reset.any()):
            return self.first
        starts = self.first.copy()
        for b in np.flatnonzero(self._needs_reset):
            span = int(self.last[b] - self.first[b]) // 2
            starts[b] += int(self._rngs[b].integers(0, span + 1))
        return starts

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every task; tasks whose episode ended at the last step are reset instead.

        Raises:
            RuntimeError: Called before :meth:`reset`.
            IndexError: A discrete action out of range (as the reference step raises).
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._compiled is None:
            return self._numpy_step(actions)
        b, n = self.num_envs, self.actions.n_assets
        acts: np.ndarray
        if self.actions.kind == "discrete":
            acts = np.asarray(actions).reshape(b).astype(np.int64, copy=False)
        else:
            acts = np.asarray(actions, dtype=np.float64).reshape(b, n)
        sim, rw = self.sim, self.reward_fn
        moments = (rw.a, rw.b) if isinstance(rw, DifferentialSharpe) else (self._no_moments,) * 2
        state = (sim.cash, sim.shares, sim.t, sim.equity, sim.costs_paid, sim.turnover)
        state += (self._peak, self._drawdown, *moments, self._needs_reset)
        # fresh arrays every step (the caller may keep them); one block per dtype
        obs = np.empty((b, self.observations.dim), dtype=np.float32)
        reward, equity, cost, turnover = np.empty((4, b))
        terminated, truncated = np.empty((2, b), dtype=bool)
        position, days = np.empty((b, n)), np.empty(b, dtype=np.int64)
        outs = (obs, reward, terminated, truncated, equity, position, cost, turnover, days)
        bad = self._compiled(
            acts, self._params, state, self._cfg, self._starts(), (*outs, *self._scratch)
        )
        if bad >= 0:
            raise IndexError(f"action {acts[bad]} of task {bad} is out of range")
        infos = {"date": days.view("datetime64[D]"), "equity": equity, "position": position}
        infos |= {"cost": cost, "turnover": turnover}
        masks = np.ones((5, b), dtype=bool)  # Gymnasium's "_key" masks: every task, every key
        infos |= {"_date": masks[0], "_equity": masks[1], "_position": masks[2]}
        infos |= {"_cost": masks[3], "_turnover": masks[4]}
        return obs, reward, terminated, truncated, infos

    def _numpy_step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """The reference step's arithmetic, in the same order, into preallocated buffers."""
        sim, buf = self.sim, self._buf
        resetting = self._needs_reset.copy()
        starts = self._starts()
        target = self.actions.to_weights(actions)
        flat = np.add(sim._base, sim.t, out=buf["flat"])
        flat += 1
        op = sim._flat_opens.take(flat, axis=0, out=buf["open"])
        cl = sim._flat_closes.take(flat, axis=0, out=buf["close"])
        cost, turnover = self._rebalance(target, op, cl)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            equity = np.add(sim.cash, np.sum(np.multiply(sim.shares, cl, out=buf["tmp"]), -1, keepdims=True, out=buf["sum"]))[:, 0]  # fmt: skip
            growth = np.divide(equity, sim.equity, out=buf["growth"])
            position = np.divide(np.multiply(sim.shares, cl), equity[:, None])
            ok = growth > 0
            log_ret = np.log(growth, out=buf["logret"], where=ok)
        log_ret[~ok] = LOG_RETURN_FLOOR
        sim.t += 1
        sim.equity[:] = equity
        sim.costs_paid += cost
        sim.turnover += turnover
        prev_dd = buf["prev_dd"]
        np.copyto(prev_dd, self._drawdown)
        np.maximum(self._peak, equity, out=self._peak)
        dd = np.subtract(1.0, np.divide(equity, self._peak, out=buf["x"]), out=self._drawdown)
        reward = self._reward(log_ret, dd, prev_dd)
        terminated = (equity < self._ruin_level) | (dd > self._max_dd)
        truncated = sim.t >= self.last
        if resetting.any():
            self._start_at(resetting, starts)
            for out in (reward, terminated, truncated, position, cost, turnover):
                out[resetting] = 0
        np.logical_or(terminated, truncated, out=self._needs_reset)
        obs = self.observations.build_batch(sim.t, position)
        infos = self._info_dict(
            self.dates.take(self._date_base + sim.t), sim.equity.copy(), position, cost, turnover
        )
        return obs, reward, terminated, truncated, infos

    def _rebalance(
        self, target: np.ndarray, op: np.ndarray, cl: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`rebalance_and_mark` in place: sets cash and shares; returns cost and turnover ``(B,)``."""
        sim, buf, cm = self.sim, self._buf, self.cost_model
        tmp = np.multiply(sim.shares, op, out=buf["tmp"])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            eq_open = np.add(sim.cash, np.sum(tmp, -1, keepdims=True, out=buf["sum"]), out=buf["eq_open"])  # fmt: skip
            pre = np.divide(tmp, eq_open, out=buf["pre"])
            inv_adv = 0.0 if sim.inv_adv is None else sim.inv_adv[sim._rows, sim.t]
            cost = cm.rebalance_cost((eq_open + abs(eq_open)) * 0.5, pre, target, inv_adv)
            eq_after = np.subtract(eq_open, cost, out=buf["sum"])
            shares = np.divide(np.multiply(target, eq_after, out=buf["shares"]), op, out=sim.shares)
            np.subtract(eq_after, np.sum(np.multiply(shares, op, out=buf["tmp"]), -1, keepdims=True), out=sim.cash)  # fmt: skip
            turnover = np.sum(np.abs(np.subtract(target, pre, out=buf["tmp"]), out=buf["tmp"]), -1, keepdims=True, out=buf["turn"])  # fmt: skip
        return cost[:, 0].copy(), turnover[:, 0].copy()

    def _reward(self, log_ret: np.ndarray, dd: np.ndarray, prev_dd: np.ndarray) -> np.ndarray:
        """The reward component on the step's arrays (a fresh array, returned to the caller)."""
        rw = self.reward_fn
        if isinstance(rw, DrawdownPenalised | DifferentialSharpe):
            return np.asarray(rw(log_ret, dd, prev_dd), dtype=np.float64)
        return log_ret.copy()

    def _start_at(self, rows: np.ndarray, starts: np.ndarray) -> None:
        """Fresh episodes for the books in ``rows``, starting at ``starts`` (drawn before the step)."""
        self.sim.reset(starts[rows], rows)
        self.reward_fn.reset_rows(rows)
        self._peak[rows] = self.env_spec.initial_cash
        self._drawdown[rows] = 0.0
        self._needs_reset[rows] = False
