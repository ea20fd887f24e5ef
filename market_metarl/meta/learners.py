"""The meta-learners and the pooled baseline: one training step each, on a batch of task windows.

Each learner owns its networks and optimiser and exposes ``step(episode) -> metrics``,
``state_dict()`` / ``load_state_dict()`` and ``agent()``; the trainer loop
(:mod:`market_metarl.meta.trainer`) drives them all the same way.

Estimators. Prices do not react to our trades, so a policy can be replayed on the same days and the
PnL of a window is differentiable in the policy's weights: the default ``pathwise`` estimator
back-propagates the PnL exactly (low variance, no critic needed). ``score_function`` is the plain
policy-gradient (REINFORCE with a batch-mean baseline) for comparison; it is unbiased but far
noisier, and needs many more iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.adapt import Params, adapt, params_of
from market_metarl.meta.agents import GradientAgent, InnerLoop, RL2Agent, ScratchAgent
from market_metarl.meta.episodes import Episode
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import GRUPolicy, MLPPolicy
from market_metarl.meta.rollout import PNL_SCALE, gru_rollout, mlp_loss, pg_loss
from market_metarl.parallel import LOCAL, Backend


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
        return ep.window(0, self.adapt_days - 1)

    def query(self, ep: Episode) -> Episode:
        return ep.window(self.adapt_days - 1, self.days)


def _loss_fn(
    estimator: str, gen: torch.Generator | None
) -> Callable[[MLPPolicy, Params, Episode], torch.Tensor]:
    """The training loss; the score-function estimator samples its actions from ``gen``."""
    if estimator == "pathwise":
        return mlp_loss
    return lambda policy, params, ep: pg_loss(policy, params, ep, gen)


@dataclass
class MAMLProblem:
    """What every task piece of a MAML meta-batch reads: the networks and the inner loop.

    On the ``local`` backend the pieces read the learner's own tensors; on ``ray`` each worker
    receives a copy (a few kB), so a piece never changes the learner.
    """

    policy: MLPPolicy
    log_lr: dict[str, torch.Tensor]
    inner_steps: int
    first_order: bool
    estimator: str
    batch: int

    def leaves(self) -> list[torch.Tensor]:
        """The tensors the outer loop updates, in a fixed order: policy, then step sizes."""
        return list(params_of(self.policy).values()) + [
            v for v in self.log_lr.values() if v.requires_grad
        ]


@dataclass(frozen=True)
class TaskGrad:
    """One task's share of the meta-gradient, and its losses before and after adapting."""

    grads: tuple[torch.Tensor | None, ...]
    query_loss: float
    pre_adapt_loss: float


def maml_task(problem: MAMLProblem, task: tuple[Episode, Episode, int | None]) -> TaskGrad:
    """The piece function of a MAML meta-batch: adapt on one task's support days, score the
    adapted policy on its query days, and return the gradient of that score (divided by the
    meta-batch size) with respect to :meth:`MAMLProblem.leaves`.

    ``task`` is ``(support, query, seed)``; ``seed`` seeds the score-function estimator's action
    samples (None for the pathwise estimator, which samples nothing).
    """
    support, query, seed = task
    policy = problem.policy
    loss = _loss_fn(
        problem.estimator, None if seed is None else torch.Generator().manual_seed(seed)
    )
    adapted = adapt(
        params_of(policy),
        lambda p: loss(policy, p, support),
        steps=problem.inner_steps,
        lr={k: v.exp() for k, v in problem.log_lr.items()},
        first_order=problem.first_order,
        max_grad_norm=10.0,
    )
    task_loss = loss(policy, adapted, query) / problem.batch
    grads = torch.autograd.grad(task_loss, problem.leaves(), allow_unused=True)
    with torch.no_grad():
        pre = float(loss(policy, params_of(policy), query)) / problem.batch
    return TaskGrad(tuple(grads), float(task_loss.detach()), pre)


class MAMLLearner:
    """MAML (Finn et al., 2017) with optional learned per-parameter step sizes (Meta-SGD).

    Inner loop: ``inner_steps`` gradient steps of the policy on each task's support days, through
    :func:`~market_metarl.meta.adapt.adapt`. Outer loop: the adapted policy's loss on the task's
    query days, averaged over the meta-batch, back-propagated into the initial parameters (and
    the log step sizes); second-order unless ``first_order``.

    The tasks of a meta-batch are independent pieces (:func:`maml_task`) run by ``backend``
    (:mod:`market_metarl.parallel`); their gradients are summed in task order, so every backend
    gives the same update. The other learners evaluate their whole batch as one vectorised
    tensor operation, which splitting across processes would only slow down.
    """

    name = "maml"

    def __init__(
        self,
        policy: MLPPolicy,
        windows: Windows,
        inner_steps: int = 1,
        inner_lr: float = 0.1,
        learn_inner_lr: bool = True,
        first_order: bool = False,
        outer_lr: float = 3e-3,
        estimator: str = "pathwise",
        grad_clip: float = 1.0,
        seed: int = 0,
        backend: Backend = LOCAL,
    ) -> None:
        self.policy, self.windows = policy, windows
        self.inner_steps, self.first_order, self.grad_clip = inner_steps, first_order, grad_clip
        self.estimator, self.backend = estimator, backend
        self.gen = torch.Generator().manual_seed(seed)  # per-task seeds of the score function
        self.log_lr = {
            k: torch.full_like(v, math.log(inner_lr), requires_grad=learn_inner_lr)
            for k, v in params_of(policy).items()
        }
        trainable = list(policy.parameters()) + [v for v in self.log_lr.values() if v.requires_grad]
        self.opt = LazyAdam(trainable, lr=outer_lr)

    def lr(self) -> dict[str, torch.Tensor]:
        return {k: v.exp() for k, v in self.log_lr.items()}

    def problem(self, batch: int) -> MAMLProblem:
        return MAMLProblem(
            self.policy, self.log_lr, self.inner_steps, self.first_order, self.estimator, batch
        )

    def step(self, ep: Episode) -> dict[str, float]:
        support, query = self.windows.support(ep), self.windows.query(ep)
        seeds: list[int | None] = [None] * ep.batch
        if self.estimator != "pathwise":  # each task's action samples get their own seed
            seeds = [int(s) for s in torch.randint(0, 2**31 - 1, (ep.batch,), generator=self.gen)]
        tasks = [(support.select([b]), query.select([b]), seeds[b]) for b in range(ep.batch)]
        problem = self.problem(ep.batch)
        results: list[TaskGrad] = self.backend.map(
            maml_task, tasks, problem, chunks=self.backend.workers
        )
        self.opt.zero_grad()
        for i, leaf in enumerate(problem.leaves()):
            total: torch.Tensor | None = None
            for r in results:  # task order, as backward() would accumulate them
                g = r.grads[i]
                if g is not None:
                    total = g.clone() if total is None else total.add_(g)
            leaf.grad = total
        outer, pre = 0.0, 0.0
        for r in results:
            outer += r.query_loss
            pre += r.pre_adapt_loss
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.opt.step()
        mean_lr = float(
            torch.cat([v.detach().exp().reshape(-1) for v in self.log_lr.values()]).mean()
        )
        return {"query_loss": outer, "pre_adapt_loss": pre, "inner_lr": mean_lr}

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "log_lr": {k: v.detach() for k, v in self.log_lr.items()},
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        with torch.no_grad():
            for k, v in state["log_lr"].items():
                self.log_lr[k].copy_(v)
        self.opt.load_state_dict(state["opt"])
        if "gen" in state:
            self.gen.set_state(state["gen"])

    def agent(self) -> GradientAgent:
        start = {k: v.detach() for k, v in params_of(self.policy).items()}
        lr = {k: v.detach() for k, v in self.lr().items()}
        return GradientAgent("maml", self.policy, start, InnerLoop(self.inner_steps, lr))


class PooledLearner:
    """One policy trained on all meta-train task windows, no adaptation (the pooled baseline)."""

    name = "pooled"

    def __init__(
        self,
        policy: MLPPolicy,
        windows: Windows,
        lr: float = 3e-3,
        estimator: str = "pathwise",
        grad_clip: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.policy, self.windows, self.grad_clip = policy, windows, grad_clip
        self.gen = torch.Generator().manual_seed(seed)
        self.loss = _loss_fn(estimator, self.gen)
        self.opt = LazyAdam(policy.parameters(), lr=lr)

    def step(self, ep: Episode) -> dict[str, float]:
        self.opt.zero_grad()
        loss = self.loss(self.policy, params_of(self.policy), ep)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.opt.step()
        return {"loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])
        if "gen" in state:
            self.gen.set_state(state["gen"])

    def agent(self) -> GradientAgent:
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
                if k.startswith(("norm.", "input_mask", "levels"))
            },
            strict=False,
        )
        return ScratchAgent(fresh, InnerLoop(steps, lr), seed=seed)


class RL2Learner:
    """RL^2 (Duan et al., 2016) trained by back-propagation through time on the PnL.

    The GRU runs over the whole window (support then query days) feeding back its previous weight
    and daily log return; the loss is minus the mean daily log return over the window, so the
    policy is rewarded for identifying the regime early and exploiting it. Because the PnL is
    differentiable in the weights, BPTT gives an exact gradient of the trial's return. On the
    synthetic family it reached about 0.95 of the oracle after 600-900 updates (a few minutes of
    CPU) given enough training regimes, where the PPO option (:mod:`market_metarl.meta.ppo`)
    plateaued near 0.55 for twice the CPU time. That is why BPTT is the default.
    """

    name = "rl2"

    def __init__(
        self, policy: GRUPolicy, windows: Windows, lr: float = 3e-3, grad_clip: float = 1.0
    ) -> None:
        self.policy, self.windows, self.grad_clip = policy, windows, grad_clip
        self.opt = LazyAdam(policy.parameters(), lr=lr)

    def step(self, ep: Episode) -> dict[str, float]:
        self.opt.zero_grad()
        _, rets, _, _ = gru_rollout(self.policy, None, ep)
        loss = -rets.mean() * PNL_SCALE
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.opt.step()
        query = rets[:, self.windows.adapt_days - 1 :]
        return {
            "loss": float(loss.detach()),
            "query_return": float(query.detach().mean() * PNL_SCALE),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])

    def agent(self) -> RL2Agent:
        return RL2Agent(self.policy)
