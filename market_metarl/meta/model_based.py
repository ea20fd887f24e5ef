"""Model-based meta-RL in the spirit of GrBAL (Nagabandi et al., 2018): adapt a model, then plan.

**Model.** :class:`ReturnModel` predicts the next day's close-to-close log return of each asset as a
Gaussian, mean and volatility, from the observation's causal features (the held weights are masked
out: they do not move prices). It is meta-trained with MAML on the Gaussian negative
log-likelihood: the inner loop takes gradient steps on the K support days' transitions through the
one :func:`~market_metarl.meta.adapt.adapt` primitive (learned per-parameter step sizes,
Meta-SGD), the outer loss is the adapted model's likelihood of the query days. All tasks of a
meta-batch adapt in one call: their parameters carry a leading task axis and the model is
evaluated with ``torch.func.vmap``, so the summed inner loss gives each task its own gradient.

**Planner.** The policy is derived from the adapted model by a one-day plan under costs:

    w* = argmax_{lo <= w <= hi}  w*m - 0.5*gamma*w**2*s**2 - c*|w - w_held| - b*max(-w, 0)

per asset (m, s: predicted mean and volatility, c: proportional cost rate, b: daily borrow cost,
``[lo, hi]``: ``[-L, L]`` or ``[0, L]`` long-only). Without borrow costs the solution is the
soft-threshold ``clip(w_held + S(m/(gamma s^2) - w_held, c/(gamma s^2)), lo, hi)`` with
``S(x, k) = sign(x) max(|x| - k, 0)``: a no-trade band of half-width ``c/(gamma s^2)`` around the
held weight, then the leverage cap. :func:`plan_weights` solves the general piecewise-quadratic
case exactly by comparing its few candidate points.

Why a closed-form one-day plan rather than a multi-day MPC: the model predicts one day ahead from
observed features; planning further would need a model of how the features themselves evolve,
and every trading day re-plans anyway (receding horizon). ``gamma = 1`` is the default because
``w*m - 0.5*w^2*s^2`` is the second-order expansion of the expected log growth, the objective
every other learner here maximises. A myopic plan under costs trades a little more than a
multi-day optimum would (its no-trade band ignores that a position is held for several days).

**Acting online.** Like GrBAL, which re-adapts at every step on the most recent transitions, the
agent adds each traded day's transition (the observation, then the next observation's
``log_ret``) to its memory and re-adapts on the last ``memory_days`` of them, so it keeps adapting
as days come (as RL^2's hidden state does). With ``online=False`` it adapts once on the support.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from market_metarl.envs.spec import EnvSpec
from market_metarl.meta.adapt import Params, adapt, call, detached_copy, params_of
from market_metarl.meta.episodes import Episode, feature_index
from market_metarl.meta.experiment import TrainConfig
from market_metarl.meta.learners import Windows
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import ScaledInputs, mlp_body

LOG_STD_BOUND = 4.0
"""Predicted log-volatilities (in units of the training returns' std) stay in +-4."""


def next_day_returns(ep: Episode) -> torch.Tensor:
    """Close-to-close log return of the day after each decision day, ``(B, D, N)`` float32.

    The decision after the close of day ``t`` reads ``obs[:, t]``; this is what the market does
    next (the ``log_ret`` feature of day ``t+1``).
    """
    return torch.log(ep.closes[:, 1:] / ep.closes[:, :-1]).float()


class ReturnModel(ScaledInputs):
    """Gaussian model of the next day's log returns ``(..., N)`` given an observation ``(..., dim)``.

    The output ``(..., 2N)`` holds the mean and the log-volatility, both in units of
    ``y_scale`` (the training returns' std per asset, fitted with :meth:`fit_scale`).
    """

    def __init__(self, obs_dim: int, n_assets: int, hidden: int = 32, layers: int = 1) -> None:
        super().__init__(obs_dim, n_assets)
        self.body, d = mlp_body(obs_dim, hidden, layers)
        self.out = nn.Linear(d, 2 * n_assets)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
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


class ModelBasedLearner:
    """MAML on the Gaussian NLL of next-day returns (GrBAL-style model-based meta-RL).

    Args:
        model: The return model (normaliser and scale fitted on meta-training data).
        windows: Support/query split (``market_metarl.meta.learners.Windows``).
        position: Where the held weights sit in an observation.
        return_index: Observation index of each asset's ``log_ret`` (the online transitions' target).
        inner_steps: Inner gradient steps.
        inner_lr: Initial inner step size.
        learn_inner_lr: Learn per-parameter step sizes (Meta-SGD).
        outer_lr: Adam step size of the model.
        inner_lr_lr: Adam step size of the log step sizes (they must move by orders of magnitude:
            e.g. the drift should barely adapt on a few noisy days, the slope a lot).
        grad_clip: Global norm clip of the outer update.
        risk_aversion: The planner's gamma.
        max_leverage: Largest absolute weight.
        long_only: Weights in ``[0, max_leverage]``.
        online: The agent keeps adapting on the days it trades.
        memory_days: Most recent transitions the agent adapts on when acting online.
    """

    name = "model_based"

    def __init__(
        self,
        model: ReturnModel,
        windows: Windows,
        position: slice,
        return_index: Sequence[int],
        inner_steps: int = 1,
        inner_lr: float = 0.1,
        learn_inner_lr: bool = True,
        outer_lr: float = 3e-3,
        inner_lr_lr: float = 3e-2,
        grad_clip: float = 1.0,
        risk_aversion: float = 1.0,
        max_leverage: float = 1.0,
        long_only: bool = False,
        online: bool = True,
        memory_days: int = 120,
    ) -> None:
        self.model, self.windows, self.position = model, windows, position
        self.return_index = list(return_index)
        self.inner_steps, self.grad_clip = inner_steps, grad_clip
        self.risk_aversion, self.max_leverage, self.long_only = (
            risk_aversion,
            max_leverage,
            long_only,
        )
        self.online, self.memory_days = online, memory_days
        self.log_lr = {
            k: torch.full_like(v, math.log(inner_lr), requires_grad=learn_inner_lr)
            for k, v in params_of(model).items()
        }
        step_sizes = [v for v in self.log_lr.values() if v.requires_grad]
        self.opt = LazyAdam(
            [
                {"params": list(model.parameters()), "lr": outer_lr},
                {"params": step_sizes, "lr": inner_lr_lr},
            ]
        )

    def lr(self) -> dict[str, torch.Tensor]:
        return {k: v.exp() for k, v in self.log_lr.items()}

    def step(self, ep: Episode) -> dict[str, float]:
        support, query = self.windows.support(ep), self.windows.query(ep)
        s_obs, s_y = support.obs, next_day_returns(support)
        q_obs, q_y = query.obs, next_day_returns(query)
        start = {
            k: v.unsqueeze(0).expand(ep.batch, *v.shape) for k, v in params_of(self.model).items()
        }
        # inner loop: every task of the meta-batch adapts on its support days at once
        adapted = adapt(
            start,
            lambda p: batched_nll(self.model, p, s_obs, s_y),
            steps=self.inner_steps,
            lr=self.lr(),
        )
        # optimize: the adapted models' likelihood of the query days
        self.opt.zero_grad()
        loss = batched_nll(self.model, adapted, q_obs, q_y) / ep.batch
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        with torch.no_grad():
            pre = batched_nll(self.model, start, q_obs, q_y) / ep.batch
        mean_lr = float(
            torch.cat([v.detach().exp().reshape(-1) for v in self.log_lr.values()]).mean()
        )
        return {"query_nll": float(loss.detach()), "pre_adapt_nll": float(pre), "inner_lr": mean_lr}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "log_lr": {k: v.detach() for k, v in self.log_lr.items()},
            "opt": self.opt.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            for k, v in state["log_lr"].items():
                self.log_lr[k].copy_(v)
        self.opt.load_state_dict(state["opt"])

    def agent(self) -> ModelBasedAgent:
        return ModelBasedAgent(
            self.model,
            {k: v.detach() for k, v in params_of(self.model).items()},
            {k: v.detach() for k, v in self.lr().items()},
            inner_steps=self.inner_steps,
            position=self.position,
            return_index=self.return_index,
            risk_aversion=self.risk_aversion,
            max_leverage=self.max_leverage,
            long_only=self.long_only,
            online=self.online,
            memory_days=self.memory_days,
        )


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


def build_model_based(
    cfg: TrainConfig,
    env: EnvSpec,
    obs_dim: int,
    n_assets: int,
    position: slice,
    seed: int,
    observations: torch.Tensor | None = None,
) -> ModelBasedLearner:
    """A fresh :class:`ModelBasedLearner` from the ``[train]`` ``mb_*`` settings.

    ``observations`` (meta-training tasks only) fit the input normaliser and the return scale
    (their ``log_ret`` columns); a learner that will load a checkpoint does not need them.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ReturnModel(obs_dim, n_assets, cfg.mb_hidden, cfg.mb_layers)
    returns = return_indices(env, n_assets)
    if observations is not None:
        model.norm.fit(observations, keep=position)
        model.fit_scale(observations[:, returns])
    model.mask_inputs(position)
    return ModelBasedLearner(
        model,
        Windows(cfg.adapt_days, cfg.horizon),
        position,
        returns,
        inner_steps=cfg.mb_inner_steps,
        inner_lr=cfg.mb_inner_lr,
        learn_inner_lr=cfg.learn_inner_lr,
        outer_lr=cfg.outer_lr,
        inner_lr_lr=cfg.mb_inner_lr_lr,
        grad_clip=cfg.grad_clip,
        risk_aversion=cfg.mb_risk_aversion,
        max_leverage=env.max_leverage,
        long_only=env.long_only,
        online=cfg.mb_online,
        memory_days=cfg.mb_memory_days,
    )


def return_indices(env: EnvSpec, n_assets: int) -> list[int]:
    """Observation index of each asset's ``log_ret`` on the decision day (always observed)."""
    return [feature_index(env, n_assets, "log_ret", asset=i) for i in range(n_assets)]
