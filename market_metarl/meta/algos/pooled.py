"""The pooled baseline: one policy trained on every meta-training task window, no adaptation.

It is every meta-learner's twin (the same network, no context): the backtest's ``pooled``,
``finetune`` (pooled plus gradient steps on the support days) and ``scratch`` (a fresh policy of the
same shape trained on the support days only) strategies are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.adapt import params_of
from market_metarl.meta.agents import GradientAgent, InnerLoop, ScratchAgent
from market_metarl.meta.episodes import Episode
from market_metarl.meta.experiment import BuildContext
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import MLPPolicy
from market_metarl.meta.registry import Algorithm
from market_metarl.meta.rollout import loss_fn
from market_metarl.seeding import child_seed
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class PooledConfig:
    """``[train.pooled]``: the pooled baseline and the strategies built from it.

    Attributes:
        batch: Task windows per update.
        iterations: Updates (0: ``[train] iterations``).
        finetune_steps: Gradient steps of the fine-tune baseline on the support days.
        finetune_lr: Step size of the fine-tune baseline.
        scratch_steps: Gradient steps of the from-scratch baseline on the support days.
        scratch_lr: Step size of the from-scratch baseline.
    """

    batch: int = 32
    iterations: int = 0
    finetune_steps: int = 10
    finetune_lr: float = 0.05
    scratch_steps: int = 50
    scratch_lr: float = 0.1

    def __post_init__(self) -> None:
        """Reject an empty batch, negative counts and non-positive step sizes.

        Raises:
            ConfigError: The message names the ``train.pooled.*`` setting.
        """
        if self.batch < 1:
            raise ConfigError(f"train.pooled.batch must be >= 1, got {self.batch}")
        for name in ("iterations", "finetune_steps", "scratch_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.pooled.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("finetune_lr", "scratch_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"train.pooled.{name} must be > 0, got {getattr(self, name)}")


class PooledLearner:
    """One MLP policy trained on all meta-train task windows (whole windows, no support/query)."""

    name = "pooled"

    def __init__(
        self,
        policy: MLPPolicy,
        lr: float = 3e-3,
        estimator: str = "pathwise",
        grad_clip: float = 1.0,
        seed: int = 0,
        batch: int = 32,
        iterations: int = 400,
    ) -> None:
        """Set up the training loss and Adam over the policy's parameters.

        Args:
            policy: The MLP policy trained.
            lr: Adam step size.
            estimator: ``pathwise`` or ``score_function``
                (:func:`~market_metarl.meta.rollout.loss_fn`).
            grad_clip: Global gradient-norm clip of each update.
            seed: Seed of the score-function estimator's action samples.
            batch: Task windows per update.
            iterations: Updates of a full run.
        """
        self.policy, self.grad_clip = policy, grad_clip
        self.batch, self.iterations = batch, iterations
        self.gen = torch.Generator().manual_seed(seed)
        self.loss = loss_fn(estimator, self.gen)
        self.opt = LazyAdam(policy.parameters(), lr=lr)

    def step(self, episode: Episode) -> dict[str, float]:
        """One update on a batch of task windows."""
        self.opt.zero_grad()
        loss = self.loss(self.policy, params_of(self.policy), episode)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.opt.step()
        return {"loss": float(loss.detach())}

    def agent_state(self) -> dict[str, Any]:
        """The policy's parameters and normaliser."""
        return {"policy": self.policy.state_dict()}

    def training_state(self) -> dict[str, Any]:
        """The optimiser and the score-function generator."""
        return {"opt": self.opt.state_dict(), "gen": self.gen.get_state()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state`."""
        self.policy.load_state_dict(state["policy"])

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state`."""
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])

    def agent(self) -> GradientAgent:
        """The pooled policy, never adapted."""
        start = {k: v.detach() for k, v in params_of(self.policy).items()}
        return GradientAgent("pooled", self.policy, start, InnerLoop(steps=0))

    def finetune_agent(self, steps: int, lr: float) -> GradientAgent:
        """The pooled policy fine-tuned on the support days (same ``adapt`` primitive)."""
        start = {k: v.detach() for k, v in params_of(self.policy).items()}
        return GradientAgent("finetune", self.policy, start, InnerLoop(steps, lr))

    def scratch_agent(self, steps: int, lr: float, seed: int) -> ScratchAgent:
        """A fresh policy of the same shape trained on the support days only."""
        fresh = MLPPolicy(self.policy.obs_dim, self.policy.n_assets, self.policy.spec)
        fresh.load_state_dict(
            {
                k: v
                for k, v in self.policy.state_dict().items()
                if k.startswith(("norm.", "input_mask", "levels", "vol_index"))
            },
            strict=False,
        )
        return ScratchAgent(fresh, InnerLoop(steps, lr), seed=seed)


def build(ctx: BuildContext) -> PooledLearner:
    """A fresh pooled learner from ``[train]`` and ``[train.pooled]``."""
    train = ctx.experiment.train
    cfg: PooledConfig = train.of("pooled")
    policy = ctx.mlp_policy()
    return PooledLearner(
        policy,
        lr=train.outer_lr,
        estimator=train.estimator,
        grad_clip=train.grad_clip,
        seed=child_seed(ctx.seed, 1),
        batch=cfg.batch,
        iterations=train.iterations_of(cfg.iterations),
    )


ALGORITHM = Algorithm(
    name="pooled",
    config=PooledConfig,
    build=build,
    summary="one policy trained on every task, never adapted (the meta-learners' twin)",
    with_pooled=False,
)
