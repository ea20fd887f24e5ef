"""The model-based agent's parts: return model, likelihood, one-day planner, and the agent.

The Gaussian :class:`ReturnModel`, its negative log-likelihood (one task, or a batch of tasks
under ``vmap``), the planner :func:`plan_weights`, and :class:`ModelBasedAgent`; the method is
described in :mod:`market_metarl.meta.algos.model_based`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from market_metarl.meta.adapt import Params, adapt, call, detached_copy
from market_metarl.meta.episodes import Episode, next_day_returns
from market_metarl.meta.policies import ScaledInputs, mlp_body

LOG_STD_BOUND = 4.0
"""Predicted log-volatilities (in units of the training returns' std) stay in +-4."""


class ReturnModel(ScaledInputs):
    """Gaussian model of the next day's log returns ``(..., N)`` given an observation ``(..., dim)``.

    The output ``(..., 2N)`` holds the mean and the log-volatility, both in units of
    ``y_scale`` (the training returns' std per asset, fitted with :meth:`fit_scale`).
    """

    def __init__(self, obs_dim: int, n_assets: int, hidden: int = 32, layers: int = 1) -> None:
        """A tanh MLP body and a linear head of ``2 * n_assets`` outputs.

        Args:
            obs_dim: Observation size.
            n_assets: Assets whose next-day returns are predicted (N).
            hidden: Hidden units per layer.
            layers: Hidden layers.
        """
        super().__init__(obs_dim, n_assets)
        self.body, d = mlp_body(obs_dim, hidden, layers)
        self.out = nn.Linear(d, 2 * n_assets)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean and log-volatility ``(..., 2N)``, in ``y_scale`` units.

        The log-volatility is soft-bounded to ``+-LOG_STD_BOUND`` by a scaled tanh.
        """
        z = self.out(self.body(self.norm(obs) * self.input_mask))
        mean, raw = z[..., : self.n_assets], z[..., self.n_assets :]
        return torch.cat([mean, LOG_STD_BOUND * torch.tanh(raw / LOG_STD_BOUND)], -1)


def gaussian_nll(
    model: ReturnModel, params: Mapping[str, torch.Tensor], obs: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (constant dropped) of returns ``y`` given ``obs``."""
    out = call(model, params, obs)
    n = model.n_assets
    mean, log_std = out[..., :n], out[..., n:]
    z = (y / model.y_scale - mean) * torch.exp(-log_std)
    return (0.5 * z**2 + log_std).mean()


def predict(
    model: ReturnModel, params: Mapping[str, torch.Tensor], obs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted mean and volatility of the next day's log returns, in return units."""
    out = call(model, params, obs)
    n = model.n_assets
    return out[..., :n] * model.y_scale, torch.exp(out[..., n:]) * model.y_scale


def plan_weights(
    mean: np.ndarray,
    std: np.ndarray,
    held: np.ndarray,
    gamma: float,
    cost_rate: float,
    low: float,
    high: float,
    borrow_daily: float = 0.0,
) -> np.ndarray:
    """The utility-maximising target weights, per asset (see the module docstring).

    ``u(w) = w*m - 0.5*gamma*w^2*s^2 - c*|w - held| - b*max(-w, 0)`` is concave and quadratic
    between its kinks (``held`` and 0), so its maximum over ``[low, high]`` is at a kink, a bound,
    or a clipped stationary point of one of its pieces; all of them are compared.

    Args:
        mean: Predicted mean returns ``m`` (any shape).
        std: Predicted volatilities ``s`` (same shape, > 0).
        held: Weights held before trading.
        gamma: Risk aversion (1: the log-growth utility, to second order).
        cost_rate: Proportional cost per unit of traded weight.
        low: Smallest weight (``-L``, or 0 long-only).
        high: Largest weight (``L``).
        borrow_daily: Daily cost per unit of short weight.

    Returns:
        Target weights, the shape of ``mean``.
    """
    m, s, h = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (mean, std, held)))
    curv = gamma * np.maximum(s, 1e-12) ** 2
    stationary = [
        (m - cost_rate * side + borrow_daily * short) / curv for side in (1, -1) for short in (0, 1)
    ]
    cands = np.stack(
        [*stationary, h, np.zeros_like(m), np.full_like(m, low), np.full_like(m, high)]
    )
    cands = np.clip(cands, low, high)
    utility = (
        cands * m
        - 0.5 * curv * cands**2
        - cost_rate * np.abs(cands - h)
        - borrow_daily * np.maximum(-cands, 0.0)
    )
    best = np.argmax(utility, axis=0)
    return np.take_along_axis(cands, best[None], 0)[0]


def batched_nll(
    model: ReturnModel, params: Mapping[str, torch.Tensor], obs: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Sum over tasks of each task's mean NLL; ``params`` carry a leading task axis ``B``."""

    def one(p: dict[str, torch.Tensor], o: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(model, p, (o,))
        n = model.n_assets
        z = (t / model.y_scale - out[..., :n]) * torch.exp(-out[..., n:])
        return (0.5 * z**2 + out[..., n:]).mean()

    losses: torch.Tensor = vmap(one)(dict(params), obs, y)
    return losses.sum()


class ModelBasedAgent:
    """Adapts the return model on the support days (and, online, on each day traded), then plans.

    Args:
        model: The meta-trained return model.
        start: Its meta-learned parameters.
        lr: Per-parameter inner step sizes.
        inner_steps: Gradient steps per adaptation.
        position: Where the held weights sit in an observation.
        return_index: Observation index of each asset's ``log_ret`` (today's return).
        risk_aversion: The planner's gamma.
        max_leverage: Largest absolute weight.
        long_only: Weights in ``[0, max_leverage]``.
        online: Keep adapting on the days traded.
        memory_days: Most recent transitions adapted on.
        cost_rate: Proportional cost rate the planner charges (replaced by the support's).
        borrow_daily: Daily short cost the planner charges (replaced by the support's).
        name: Strategy name.
    """

    def __init__(
        self,
        model: ReturnModel,
        start: Params,
        lr: Mapping[str, torch.Tensor],
        inner_steps: int,
        position: slice,
        return_index: Sequence[int],
        risk_aversion: float = 1.0,
        max_leverage: float = 1.0,
        long_only: bool = False,
        online: bool = True,
        memory_days: int = 120,
        cost_rate: float = 0.0,
        borrow_daily: float = 0.0,
        name: str = "model_based",
    ) -> None:
        """Start from the meta-learned parameters with an empty memory (:meth:`init`)."""
        self.name, self.model, self.start, self.lr = name, model, start, dict(lr)
        self.inner_steps, self.position, self.return_index = (
            inner_steps,
            position,
            list(return_index),
        )
        self.risk_aversion, self.max_leverage, self.long_only = (
            risk_aversion,
            max_leverage,
            long_only,
        )
        self.online, self.memory_days = online, memory_days
        self.cost_rate, self.borrow_daily = cost_rate, borrow_daily
        self.init()

    def init(self) -> None:
        """Back to the meta-learned parameters; forget every remembered transition."""
        self.params: Params = dict(self.start)
        self.memory_obs: list[torch.Tensor] = []
        self.memory_y: list[torch.Tensor] = []
        self.last_obs: torch.Tensor | None = None

    def _refit(self) -> None:
        if not self.memory_obs or self.inner_steps == 0:
            self.params = dict(self.start)
            return
        obs = torch.stack(self.memory_obs[-self.memory_days :])
        y = torch.stack(self.memory_y[-self.memory_days :])
        with torch.enable_grad():
            adapted = adapt(
                detached_copy(self.start),
                lambda p: gaussian_nll(self.model, p, obs, y),
                steps=self.inner_steps,
                lr=self.lr,
                first_order=True,
            )
        self.params = {k: v.detach() for k, v in adapted.items()}

    def adapt(self, support: Episode) -> None:
        """Adapt on the support days' transitions (one task)."""
        self.cost_rate, self.borrow_daily = support.cost_rate, support.borrow_daily
        if support.days == 0:
            return
        obs, y = support.obs[0], next_day_returns(support)[0]
        self.memory_obs += list(obs)
        self.memory_y += list(y)
        self.last_obs = None  # today's return (first obs acted on) is the support's last target
        self._refit()

    @torch.no_grad()
    def predict(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean and volatility of tomorrow's log returns ``(N,)`` with the current model."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1)
        mean, std = predict(self.model, self.params, x)
        return mean.double().numpy(), std.double().numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """Target weights ``(N,)`` for the next open, planned on the adapted model's prediction.

        Online, yesterday's observation and today's return (read from ``obs``) are first added
        to the memory and the model re-adapted on the last ``memory_days`` transitions. The plan
        trades from the weights held in ``obs`` at the cost rate and borrow cost of the last
        support adapted on (the constructor's before any). ``reward`` is not read.
        """
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1)
        if self.online and self.last_obs is not None:
            self.memory_obs.append(self.last_obs)
            self.memory_y.append(x[self.return_index].clone())
            self._refit()
        self.last_obs = x.clone()
        mean, std = self.predict(obs)
        held = np.asarray(obs, dtype=np.float64).reshape(-1)[self.position]
        low = 0.0 if self.long_only else -self.max_leverage
        return plan_weights(
            mean,
            std,
            held,
            self.risk_aversion,
            self.cost_rate,
            low,
            self.max_leverage,
            self.borrow_daily,
        )

    def task_state(self) -> dict[str, np.ndarray]:
        """The return model's adapted parameters (what the task-inference probe reads)."""
        return {k: v.detach().numpy() for k, v in self.params.items()}
