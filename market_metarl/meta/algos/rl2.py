"""RL^2 (Duan et al., 2016) trained by back-propagation through time on the PnL.

The GRU runs over the whole window (support then query days) feeding back its previous weight and
daily log return; the loss is minus the mean daily log return over the window, so the policy is
rewarded for identifying the regime early and exploiting it. Because the PnL is differentiable in
the weights, BPTT gives an exact gradient of the trial's return. On the synthetic family it reached
about 0.95 of the oracle after 600-900 updates (a few minutes of CPU) given enough training
regimes, where PPO (:mod:`market_metarl.meta.algos.rl2_ppo`) plateaued near 0.55 for twice the CPU
time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.agents import RL2Agent
from market_metarl.meta.episodes import Episode, Windows
from market_metarl.meta.experiment import BuildContext
from market_metarl.meta.objectives import task_objective
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import GRUPolicy, seeded_gru
from market_metarl.meta.registry import Algorithm
from market_metarl.meta.rollout import PNL_SCALE, gru_rollout
from market_metarl.meta.sizing import read_volatility
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class RL2Config:
    """``[train.rl2]``: RL^2's own settings.

    Attributes:
        hidden: GRU units.
        batch: Task windows per update.
        iterations: Updates (0: ``[train] iterations``); BPTT updates are cheap and it needs more
            of them than MAML's meta-batches.
    """

    hidden: int = 32
    batch: int = 64
    iterations: int = 0

    def __post_init__(self) -> None:
        """Reject an empty GRU or batch and negative iterations.

        Raises:
            ConfigError: The message names the ``train.rl2.*`` setting.
        """
        for name in ("hidden", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.rl2.{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ConfigError(f"train.rl2.iterations must be >= 0, got {self.iterations}")


class RL2Learner:
    """The RL^2 learner by BPTT (see the module docstring)."""

    name = "rl2"

    def __init__(
        self,
        policy: GRUPolicy,
        windows: Windows,
        lr: float = 3e-3,
        grad_clip: float = 1.0,
        batch: int = 64,
        iterations: int = 400,
    ) -> None:
        """Set up Adam over the GRU policy's parameters.

        Args:
            policy: The recurrent policy trained.
            windows: Support/query split (for the ``query_return`` metric).
            lr: Adam step size.
            grad_clip: Global gradient-norm clip of each update.
            batch: Task windows per update.
            iterations: Updates of a full run.
        """
        self.policy, self.windows, self.grad_clip = policy, windows, grad_clip
        self.batch, self.iterations = batch, iterations
        self.opt = LazyAdam(policy.parameters(), lr=lr)

    def step(self, episode: Episode) -> dict[str, float]:
        """One BPTT update over a batch of whole windows."""
        self.opt.zero_grad()
        weights, rets, _, _ = gru_rollout(self.policy, None, episode)
        objective = self.policy.spec.objective
        if objective.is_default:  # the expression of the recorded parameter digests
            loss = -rets.mean() * PNL_SCALE
        else:
            loss = task_objective(rets, weights, objective).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.opt.step()
        query = rets[:, self.windows.adapt_days - 1 :]
        return {
            "loss": float(loss.detach()),
            "query_return": float(query.detach().mean() * PNL_SCALE),
        }

    def agent_state(self) -> dict[str, Any]:
        """The GRU policy's parameters and normaliser."""
        return {"policy": self.policy.state_dict()}

    def training_state(self) -> dict[str, Any]:
        """The optimiser."""
        return {"opt": self.opt.state_dict()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state`."""
        self.policy.load_state_dict(state["policy"])

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state`."""
        self.opt.load_state_dict(state["opt"])

    def agent(self) -> RL2Agent:
        """Adapts through its hidden state."""
        return RL2Agent(self.policy)


def build(ctx: BuildContext) -> RL2Learner:
    """A fresh RL^2 learner from ``[train]`` and ``[train.rl2]``."""
    train = ctx.experiment.train
    cfg: RL2Config = train.of("rl2")
    spec = train.policy_spec(ctx.experiment.env, cfg.hidden)
    policy = seeded_gru(ctx.obs_dim, ctx.n_assets, spec, ctx.seed)
    if ctx.observations is not None:
        policy.norm.fit(ctx.observations, keep=ctx.position_slice)
    if train.vol_target:
        read_volatility(policy, ctx.vol_indices())
    return RL2Learner(
        policy,
        Windows(train.adapt_days, train.horizon),
        lr=train.outer_lr,
        grad_clip=train.grad_clip,
        batch=cfg.batch,
        iterations=train.iterations_of(cfg.iterations),
    )


ALGORITHM = Algorithm(
    name="rl2",
    config=RL2Config,
    build=build,
    summary="RL^2 by BPTT: a GRU whose hidden state is the adaptation",
)
