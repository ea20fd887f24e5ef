"""The batched env in torch: the same step on tensors, on the CPU or a GPU.

:class:`TorchBatchedTradingEnv` copies a :class:`~market_metarl.envs.vector_env.BatchedTradingEnv`'s
arrays (prices, ``1/adv``, the feature buffer under the observation windows, dates) to ``device``
once and steps with the same expressions on tensors (float64 accounting, float32 observations),
so on the same actions it gives the numpy env's observations and rewards to float64 rounding
(``tests/envs/test_torch_env.py``, on the CPU). Nothing in ``step`` reads a value back to the host
(no ``.item()``, no branch on tensor values), so a CUDA step is a queue of kernels.

``replicas=k`` steps ``k`` independent books per task (``B = k * tasks``) reading the same market
arrays: a million books need a million tasks' worth of state, not of prices.

Differences from the numpy env: ``infos["date"]`` is int64 days since 1970-01-01 (torch has no
dates), and ``random_start`` draws from a torch generator (same range, other numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from market_metarl.envs.costs import ORDER_TOLERANCE
from market_metarl.envs.rewards import DSR_VAR_FLOOR
from market_metarl.envs.trading_env import LOG_RETURN_FLOOR
from market_metarl.envs.vector_env import BatchedTradingEnv

Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


def _relu(x: torch.Tensor) -> torch.Tensor:
    return (x + x.abs()) * 0.5


class TorchBatchedTradingEnv:
    """A :class:`BatchedTradingEnv` stepped on torch tensors (NEXT_STEP autoreset, same infos).

    Args:
        env: The numpy batched env whose tasks and settings to copy.
        device: Where the tensors live (``"cpu"``, ``"cuda"``, ...).
        replicas: Books per task (each its own state, the task's market shared).
    """

    def __init__(self, env: BatchedTradingEnv, device: str | torch.device = "cpu", replicas: int = 1) -> None:  # fmt: skip
        """Copy the market arrays and settings to ``device`` and allocate the books' state."""
        dev = self.device = torch.device(device)
        self.spec, self.cost_model = env.env_spec, env.cost_model
        tasks = env.num_envs
        self.num_envs = tasks * int(replicas)
        self.task = torch.arange(self.num_envs, device=dev) % tasks  # book -> task row
        f64 = torch.float64
        self.opens = torch.as_tensor(env.sim.opens, dtype=f64, device=dev)
        self.closes = torch.as_tensor(env.sim.closes, dtype=f64, device=dev)
        inv_adv = env.sim.inv_adv
        self.inv_adv = None if inv_adv is None else torch.as_tensor(inv_adv, dtype=f64, device=dev)
        win = env.observations.windows
        item = win.itemsize
        flat = np.lib.stride_tricks.as_strided(win, (tasks * win.strides[0] // item,), (item,))
        buf = torch.as_tensor(np.array(flat), device=dev)
        self.windows = torch.as_strided(buf, win.shape, tuple(s // item for s in win.strides))
        self.first = torch.as_tensor(env.first, device=dev)
        self.last = torch.as_tensor(env.last, device=dev)
        self.span = torch.as_tensor(env.observations.span, dtype=f64, device=dev)
        self.dates = torch.as_tensor(env.dates.view(np.int64).reshape(tasks, -1), device=dev)
        self.levels = torch.as_tensor(env.actions.levels or (0.0,), dtype=f64, device=dev)
        self.kind, self.n_assets = env.actions.kind, env.actions.n_assets
        self.low, self.high = env.actions.low, env.actions.max_leverage
        self.ruin, self.max_dd = float(env._ruin_level), float(env._max_dd)
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.generator = torch.Generator(device=dev)
        b, n, init = self.num_envs, self.n_assets, float(self.spec.initial_cash)
        self.t = torch.zeros(b, dtype=torch.int64, device=dev)
        self.cash = torch.full((b, 1), init, dtype=f64, device=dev)
        self.shares = torch.zeros((b, n), dtype=f64, device=dev)
        self.equity, self.peak = (
            torch.full((b,), init, dtype=f64, device=dev),
            torch.full((b,), init, dtype=f64, device=dev),
        )
        self.drawdown, self.moment_a, self.moment_b = (
            torch.zeros(b, dtype=f64, device=dev) for _ in range(3)
        )
        self.needs_reset = torch.zeros(b, dtype=torch.bool, device=dev)

    def _start(self, rows: torch.Tensor) -> None:
        """Fresh all-cash books where the bool tensor ``rows`` is True (no host sync)."""
        first = self.first[self.task]
        if self.spec.random_start:
            span = (self.last[self.task] - first) // 2 + 1
            u = torch.rand(self.num_envs, generator=self.generator, device=self.device, dtype=torch.float64)  # fmt: skip
            first = first + (u * span).long()
        init = self.spec.initial_cash
        self.t = torch.where(rows, first, self.t)
        self.cash = torch.where(rows[:, None], init, self.cash)
        self.shares = torch.where(rows[:, None], 0.0, self.shares)
        self.equity = torch.where(rows, init, self.equity)
        self.peak = torch.where(rows, init, self.peak)
        for name in ("drawdown", "moment_a", "moment_b"):
            setattr(self, name, torch.where(rows, 0.0, getattr(self, name)))
        self.needs_reset = self.needs_reset & ~rows

    def _observe(self, position: torch.Tensor) -> torch.Tensor:
        obs = self.windows[self.task, self.t]  # a gather: a new tensor
        n = self.n_assets
        obs[:, :n] = position.to(obs.dtype)
        if self.spec.include_time:
            span = self.span[self.task]
            obs[:, n] = ((self.t - self.first[self.task]) / span).to(obs.dtype)
        return obs

    def _infos(self, position: torch.Tensor, cost: torch.Tensor, turnover: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
        date = self.dates[self.task, self.t]
        return {"date": date, "equity": self.equity.clone(), "position": position, "cost": cost, "turnover": turnover}  # fmt: skip

    def reset(self, *, seed: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reset every book (``seed`` seeds the random starts' generator)."""
        if seed is not None:
            self.generator.manual_seed(seed)
        self._start(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        zeros = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
        position = torch.zeros((self.num_envs, self.n_assets), dtype=torch.float64, device=self.device)  # fmt: skip
        return self._observe(position), self._infos(position, zeros, zeros.clone())

    def _targets(self, actions: torch.Tensor) -> torch.Tensor:
        if self.kind == "discrete":
            return self.levels[actions.reshape(-1).long()][:, None]
        w = actions.to(torch.float64).reshape(-1, self.n_assets).clamp(self.low, self.high)
        gross = w.abs().sum(-1, keepdim=True)
        scale = torch.where(gross > self.high, self.high / gross.clamp_min(1e-300), 1.0)
        return w * scale

    def _trade(self, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``rebalance_and_mark`` and the cost model's terms, on tensors."""
        cm, nxt = self.cost_model, self.t + 1
        op, cl = self.opens[self.task, nxt], self.closes[self.task, nxt]
        held = self.shares * op
        eo = self.cash + held.sum(-1, keepdim=True)
        pre = held / eo
        er = _relu(eo)
        notional = (target - pre).abs() * er
        per = cm.rate * notional
        if cm.min_fee:
            per = per + _relu(cm.min_fee - cm.fee_rate * notional) * (notional > ORDER_TOLERANCE)
        if cm.impact_coef and self.inv_adv is not None:
            per = (
                per
                + cm.impact_coef * (notional * self.inv_adv[self.task, self.t]).sqrt() * notional
            )
        if cm.borrow_daily:
            per = per + cm.borrow_daily * ((target.abs() - target) * 0.5) * er
        cost = per.sum(-1, keepdim=True)
        ea = eo - cost
        shares = target * ea / op
        cash = ea - (shares * op).sum(-1, keepdim=True)
        equity = cash + (shares * cl).sum(-1, keepdim=True)
        turnover = (target - pre).abs().sum(-1)
        return cash, shares, equity[:, 0], cost[:, 0], turnover, shares * cl / equity

    def _reward(self, log_ret: torch.Tensor, dd: torch.Tensor, prev_dd: torch.Tensor) -> torch.Tensor:  # fmt: skip
        if self.spec.reward == "drawdown_penalised":
            return log_ret - self.spec.drawdown_penalty * _relu(dd - prev_dd)
        if self.spec.reward == "log_return":
            return log_ret
        a, m, eta = self.moment_a, self.moment_b, self.spec.dsr_eta
        d_a, d_b, var = log_ret - a, log_ret * log_ret - m, m - a * a
        safe = DSR_VAR_FLOOR + _relu(var - DSR_VAR_FLOOR)
        reward = (m * d_a - 0.5 * a * d_b) / safe**1.5 * (var > DSR_VAR_FLOOR)
        self.moment_a, self.moment_b = a + eta * d_a, m + eta * d_b
        return reward

    def step(self, actions: torch.Tensor) -> Tensors:
        """Step every book; books whose episode ended at the last step are reset instead."""
        resetting = self.needs_reset.clone()
        cash, shares, equity, cost, turnover, position = self._trade(self._targets(actions))
        growth = equity / self.equity
        ok = growth > 0
        log_ret = torch.where(ok, torch.log(torch.where(ok, growth, 1.0)), LOG_RETURN_FLOOR)
        self.cash, self.shares, self.equity, self.t = cash, shares, equity, self.t + 1
        prev_dd = self.drawdown
        self.peak = torch.maximum(self.peak, equity)
        self.drawdown = 1.0 - equity / self.peak
        reward = self._reward(log_ret, self.drawdown, prev_dd)
        terminated = (equity < self.ruin) | (self.drawdown > self.max_dd)
        truncated = self.t >= self.last[self.task]
        self._start(resetting)  # a no-op on books not resetting
        reward = torch.where(resetting, 0.0, reward)
        terminated, truncated = terminated & ~resetting, truncated & ~resetting
        position = torch.where(resetting[:, None], 0.0, position)
        cost, turnover = torch.where(resetting, 0.0, cost), torch.where(resetting, 0.0, turnover)
        self.needs_reset = terminated | truncated
        return self._observe(position), reward, terminated, truncated, self._infos(position, cost, turnover)  # fmt: skip

    def close(self, **kwargs: Any) -> None:
        """Nothing to release (tensors are freed with the env)."""
