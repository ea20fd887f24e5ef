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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.adapt import adapt, params_of
from market_metarl.meta.algos.model_based_agent import ModelBasedAgent, ReturnModel, batched_nll
from market_metarl.meta.episodes import Episode, Windows, next_day_returns, return_indices
from market_metarl.meta.experiment import BuildContext
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.registry import Algorithm
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class ModelBasedConfig:
    """``[train.model_based]``: the model-based learner's own settings.

    Attributes:
        hidden: Hidden units of the return model.
        layers: Hidden layers of the return model.
        batch: Tasks per meta-batch.
        iterations: Meta-batches (0: ``[train] iterations``); its updates are cheap and the
            learned step sizes need many of them.
        inner_steps: Gradient steps of the return model on the support days' likelihood.
        inner_lr: Initial inner step size (learned if ``learn_inner_lr``).
        learn_inner_lr: Learn per-parameter inner step sizes (Meta-SGD).
        inner_lr_lr: Adam step size of the log inner step sizes; larger than ``[train]
            outer_lr`` so they can move by orders of magnitude within the budget.
        risk_aversion: The planner's gamma in ``w*m - 0.5*gamma*w^2*s^2 - cost``; 1 is the
            second-order expansion of the log growth that the other learners maximise.
        online: The agent keeps re-adapting on each day it trades (GrBAL).
        memory_days: Most recent days' transitions the agent adapts on.
    """

    hidden: int = 32
    layers: int = 1
    batch: int = 16
    iterations: int = 1500
    inner_steps: int = 1
    inner_lr: float = 0.1
    learn_inner_lr: bool = True
    inner_lr_lr: float = 0.03
    risk_aversion: float = 1.0
    online: bool = True
    memory_days: int = 120

    def __post_init__(self) -> None:
        """Reject empty networks or memory, negative counts and non-positive rates.

        Raises:
            ConfigError: The message names the ``train.model_based.*`` setting.
        """
        for name in ("hidden", "layers", "batch", "memory_days"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"train.model_based.{name} must be >= 1, got {getattr(self, name)}"
                )
        for name in ("iterations", "inner_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"train.model_based.{name} must be >= 0, got {getattr(self, name)}"
                )
        for name in ("inner_lr", "inner_lr_lr", "risk_aversion"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"train.model_based.{name} must be > 0, got {getattr(self, name)}"
                )


class ModelBasedLearner:
    """MAML on the Gaussian NLL of next-day returns (GrBAL-style model-based meta-RL).

    Args:
        model: The return model (normaliser and scale fitted on meta-training data).
        windows: Support/query split (:class:`~market_metarl.meta.episodes.Windows`).
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
        batch: Tasks per meta-batch.
        iterations: Meta-batches of a full run.
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
        batch: int = 16,
        iterations: int = 1500,
    ) -> None:
        """Start the log step sizes at ``log(inner_lr)``; one Adam, a group for each rate."""
        self.model, self.windows, self.position = model, windows, position
        self.batch, self.iterations = batch, iterations
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
        """The inner step sizes, per parameter."""
        return {k: v.exp() for k, v in self.log_lr.items()}

    def step(self, ep: Episode) -> dict[str, float]:
        """One meta-update of the return model on a batch of task windows."""
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

    def agent_state(self) -> dict[str, Any]:
        """The return model's parameters and the log step sizes."""
        return {
            "model": self.model.state_dict(),
            "log_lr": {k: v.detach() for k, v in self.log_lr.items()},
        }

    def training_state(self) -> dict[str, Any]:
        """The optimiser."""
        return {"opt": self.opt.state_dict()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state`."""
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            for k, v in state["log_lr"].items():
                self.log_lr[k].copy_(v)

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state`."""
        self.opt.load_state_dict(state["opt"])

    def agent(self) -> ModelBasedAgent:
        """Adapts the model on the support days (and online), then plans."""
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


def build(ctx: BuildContext) -> ModelBasedLearner:
    """A fresh model-based learner from ``[train]`` and ``[train.model_based]``.

    ``ctx.observations`` (meta-training tasks only) fit the input normaliser and the return scale
    (their ``log_ret`` columns); a learner that will load a checkpoint does not need them.
    """
    ctx.plain_objective_only("model_based")
    train, env = ctx.experiment.train, ctx.experiment.env
    cfg: ModelBasedConfig = train.of("model_based")
    position = ctx.position_slice
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        model = ReturnModel(ctx.obs_dim, ctx.n_assets, cfg.hidden, cfg.layers)
    returns = return_indices(env, ctx.n_assets)
    if ctx.observations is not None:
        model.norm.fit(ctx.observations, keep=position)
        model.fit_scale(ctx.observations[:, returns])
    model.mask_inputs(position)
    return ModelBasedLearner(
        model,
        Windows(train.adapt_days, train.horizon),
        position,
        returns,
        inner_steps=cfg.inner_steps,
        inner_lr=cfg.inner_lr,
        learn_inner_lr=cfg.learn_inner_lr,
        outer_lr=train.outer_lr,
        inner_lr_lr=cfg.inner_lr_lr,
        grad_clip=train.grad_clip,
        risk_aversion=cfg.risk_aversion,
        max_leverage=env.max_leverage,
        long_only=env.long_only,
        online=cfg.online,
        memory_days=cfg.memory_days,
        batch=cfg.batch,
        iterations=train.iterations_of(cfg.iterations),
    )


ALGORITHM = Algorithm(
    name="model_based",
    config=ModelBasedConfig,
    build=build,
    summary="GrBAL-style: meta-learn a return model that adapts, then plan a one-day trade",
)
