"""MAML (Finn et al., 2017) with optional learned per-parameter step sizes (Meta-SGD).

Inner loop: ``inner_steps`` gradient steps of the policy on each task's support days, through
:func:`~market_metarl.meta.adapt.adapt`. Outer loop: the adapted policy's loss on the task's query
days, averaged over the meta-batch, back-propagated into the initial parameters (and the log step
sizes); second-order unless ``first_order``.

Estimators. Prices do not react to our trades, so a policy can be replayed on the same days and the
PnL of a window is differentiable in the policy's weights: the default ``pathwise`` estimator
back-propagates the PnL exactly (low variance, no critic needed). ``score_function`` is the plain
policy-gradient (REINFORCE with a batch-mean baseline) for comparison; it is unbiased but far
noisier, and needs many more iterations.

Two paths compute the same meta-gradient (``[train.maml] vectorised``):

- vectorised (the default): the whole meta-batch is one batched computation
  (:func:`maml_meta_batch`). The shared start is expanded to per-task parameters with a leading
  task axis, every task takes its inner steps at once (the summed support losses give each task
  its own gradient, clipped per task), and each day of a rollout is one call for all tasks
  (:meth:`~market_metarl.meta.policies.MLPPolicy.forward_per_task`, batched matrix products). It
  runs in this process whatever the backend.
- per-task (``vectorised = false``): each task is a piece (:func:`maml_task`) run by the backend,
  so Ray can spread a meta-batch over workers; the reference the vectorised path is tested
  against (same parameters to float rounding). The score-function estimator always takes this
  path: its per-task seeded action samples do not vectorise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.adapt import adapt, params_of
from market_metarl.meta.agents import GradientAgent, InnerLoop
from market_metarl.meta.episodes import Episode, Windows
from market_metarl.meta.experiment import BuildContext
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import MLPPolicy
from market_metarl.meta.registry import Algorithm
from market_metarl.meta.rollout import loss_fn, task_losses
from market_metarl.parallel import LOCAL, Backend
from market_metarl.seeding import child_seed
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class MAMLConfig:
    """``[train.maml]``: MAML's own settings.

    Attributes:
        batch: Tasks per meta-batch.
        iterations: Meta-batches (0: ``[train] iterations``).
        inner_steps: Inner gradient steps on the support days.
        inner_lr: Initial inner step size.
        learn_inner_lr: Learn per-parameter inner step sizes (Meta-SGD).
        first_order: First-order MAML (no second derivatives through the inner loop).
        vectorised: Adapt the whole meta-batch as one batched computation in this process;
            false: one piece per task, run by the backend (see the module docstring).
    """

    batch: int = 16
    iterations: int = 0
    inner_steps: int = 1
    inner_lr: float = 0.05
    learn_inner_lr: bool = True
    first_order: bool = False
    vectorised: bool = True

    def __post_init__(self) -> None:
        """Reject an empty meta-batch, negative counts and a non-positive step size.

        Raises:
            ConfigError: The message names the ``train.maml.*`` setting.
        """
        if self.batch < 1:
            raise ConfigError(f"train.maml.batch must be >= 1, got {self.batch}")
        if self.iterations < 0 or self.inner_steps < 0:
            raise ConfigError("train.maml.iterations and inner_steps must be >= 0")
        if not self.inner_lr > 0:
            raise ConfigError(f"train.maml.inner_lr must be > 0, got {self.inner_lr}")


@dataclass
class MAMLProblem:
    """What every task piece of a MAML meta-batch reads: the networks and the inner loop.

    On the ``local`` backend the pieces read the learner's own tensors; on ``ray`` and
    ``processes`` each worker receives a copy (a few kB), so a piece never changes the learner.
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
    """The piece function of a MAML meta-batch.

    Adapts on one task's support days, scores the adapted policy on its query days, and returns
    the gradient of that score (divided by the meta-batch size) with respect to
    :meth:`MAMLProblem.leaves`. ``task`` is ``(support, query, seed)``; ``seed`` seeds the
    score-function estimator's action samples (None for the pathwise estimator).
    """
    support, query, seed = task
    policy = problem.policy
    loss = loss_fn(problem.estimator, None if seed is None else torch.Generator().manual_seed(seed))
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


def maml_meta_batch(problem: MAMLProblem, support: Episode, query: Episode) -> TaskGrad:
    """The whole meta-batch at once: :func:`maml_task` for all B tasks, summed, in one computation.

    The pathwise estimator only. ``support`` and ``query`` hold the B tasks' windows; the result
    carries the gradient summed over the tasks and the summed losses, as the sum of the per-task
    pieces would (up to float rounding: the sums run in another order).
    """
    policy, b = problem.policy, support.batch
    start = params_of(policy)
    tasks_start = {k: v.unsqueeze(0).expand(b, *v.shape) for k, v in start.items()}
    # inner loop: each task adapts on its own support days, all tasks at once
    adapted = adapt(
        tasks_start,
        lambda p: task_losses(policy, p, support, per_task=True).sum(),
        steps=problem.inner_steps,
        lr={k: v.exp() for k, v in problem.log_lr.items()},
        first_order=problem.first_order,
        max_grad_norm=10.0,
        per_task=True,
    )
    # outer loss: each adapted policy on its own query days
    task_loss = task_losses(policy, adapted, query, per_task=True).sum() / problem.batch
    grads = torch.autograd.grad(task_loss, problem.leaves(), allow_unused=True)
    with torch.no_grad():  # the shared start needs no per-task parameters
        pre = float(task_losses(policy, start, query).sum()) / problem.batch
    return TaskGrad(tuple(grads), float(task_loss.detach()), pre)


class MAMLLearner:
    """The MAML learner (see the module docstring).

    With ``vectorised`` (and the pathwise estimator) a meta-batch is one batched computation
    (:func:`maml_meta_batch`) in this process. Otherwise its tasks are independent pieces
    (:func:`maml_task`) run by ``backend`` (:mod:`market_metarl.parallel`), their gradients
    summed in task order. Either way every backend gives the same update.
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
        batch: int = 16,
        iterations: int = 400,
        vectorised: bool = True,
    ) -> None:
        """Start the log step sizes at ``log(inner_lr)`` and set up the outer Adam.

        Args:
            policy: The MLP policy whose parameters are the meta-learned start.
            windows: Support/query split of the sampled task windows.
            inner_steps: Inner gradient steps on the support days.
            inner_lr: Initial inner step size, every parameter entry alike.
            learn_inner_lr: Learn the per-entry step sizes (Meta-SGD) with the policy.
            first_order: Drop second derivatives through the inner loop.
            outer_lr: Adam step size of the outer update.
            estimator: ``pathwise`` or ``score_function`` (see the module docstring).
            grad_clip: Global gradient-norm clip of the policy's outer update.
            seed: Seed of the generator that seeds each task's score-function samples.
            backend: Runs the meta-batch's task pieces (:func:`maml_task`).
            batch: Tasks per meta-batch.
            iterations: Meta-batches of a full run.
            vectorised: One batched computation per meta-batch (pathwise estimator only);
                false: one backend piece per task.
        """
        self.policy, self.windows, self.vectorised = policy, windows, vectorised
        self.inner_steps, self.first_order, self.grad_clip = inner_steps, first_order, grad_clip
        self.estimator, self.backend = estimator, backend
        self.batch, self.iterations = batch, iterations
        self.gen = torch.Generator().manual_seed(seed)  # per-task seeds of the score function
        self.log_lr = {
            k: torch.full_like(v, math.log(inner_lr), requires_grad=learn_inner_lr)
            for k, v in params_of(policy).items()
        }
        trainable = list(policy.parameters()) + [v for v in self.log_lr.values() if v.requires_grad]
        self.opt = LazyAdam(trainable, lr=outer_lr)

    def lr(self) -> dict[str, torch.Tensor]:
        """The inner step sizes, per parameter."""
        return {k: v.exp() for k, v in self.log_lr.items()}

    def problem(self, batch: int) -> MAMLProblem:
        """The shared inputs of one meta-batch's task pieces."""
        return MAMLProblem(
            self.policy, self.log_lr, self.inner_steps, self.first_order, self.estimator, batch
        )

    def step(self, episode: Episode) -> dict[str, float]:
        """One meta-update on a batch of task windows."""
        support, query = self.windows.support(episode), self.windows.query(episode)
        problem = self.problem(episode.batch)
        results: list[TaskGrad]
        if self.vectorised and self.estimator == "pathwise":
            results = [maml_meta_batch(problem, support, query)]
        else:
            seeds: list[int | None] = [None] * episode.batch
            if self.estimator != "pathwise":  # each task's action samples get their own seed
                draws = torch.randint(0, 2**31 - 1, (episode.batch,), generator=self.gen)
                seeds = [int(s) for s in draws]
            tasks = [
                (support.select([b]), query.select([b]), seeds[b]) for b in range(episode.batch)
            ]
            results = self.backend.map(maml_task, tasks, problem, chunks=self.backend.workers)
        self.opt.zero_grad()
        for i, leaf in enumerate(problem.leaves()):
            total: torch.Tensor | None = None
            for r in results:  # task order, as backward() would accumulate them
                g = r.grads[i]
                if g is not None:
                    total = g.clone() if total is None else total.add_(g)
            leaf.grad = total
        outer = sum(r.query_loss for r in results)
        pre = sum(r.pre_adapt_loss for r in results)
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.opt.step()
        mean_lr = float(
            torch.cat([v.detach().exp().reshape(-1) for v in self.log_lr.values()]).mean()
        )
        return {"query_loss": outer, "pre_adapt_loss": pre, "inner_lr": mean_lr}

    def agent_state(self) -> dict[str, Any]:
        """The initial parameters and the log step sizes."""
        return {
            "policy": self.policy.state_dict(),
            "log_lr": {k: v.detach() for k, v in self.log_lr.items()},
        }

    def training_state(self) -> dict[str, Any]:
        """The optimiser and the score-function generator."""
        return {"opt": self.opt.state_dict(), "gen": self.gen.get_state()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state`."""
        self.policy.load_state_dict(state["policy"])
        with torch.no_grad():
            for k, v in state["log_lr"].items():
                self.log_lr[k].copy_(v)

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state`."""
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])

    def agent(self) -> GradientAgent:
        """Adapts by the meta-learned start and step sizes."""
        start = {k: v.detach() for k, v in params_of(self.policy).items()}
        lr = {k: v.detach() for k, v in self.lr().items()}
        return GradientAgent("maml", self.policy, start, InnerLoop(self.inner_steps, lr))


def build(ctx: BuildContext) -> MAMLLearner:
    """A fresh MAML learner from ``[train]`` and ``[train.maml]``."""
    train = ctx.experiment.train
    cfg: MAMLConfig = train.of("maml")
    policy = ctx.mlp_policy()
    return MAMLLearner(
        policy,
        Windows(train.adapt_days, train.horizon),
        inner_steps=cfg.inner_steps,
        inner_lr=cfg.inner_lr,
        learn_inner_lr=cfg.learn_inner_lr,
        first_order=cfg.first_order,
        outer_lr=train.outer_lr,
        estimator=train.estimator,
        grad_clip=train.grad_clip,
        seed=child_seed(ctx.seed, 1),
        backend=ctx.backend or LOCAL,
        batch=cfg.batch,
        iterations=train.iterations_of(cfg.iterations),
        vectorised=cfg.vectorised,
    )


ALGORITHM = Algorithm(
    name="maml",
    config=MAMLConfig,
    build=build,
    summary="MAML / Meta-SGD: a meta-learned start and step sizes, adapted by gradient steps",
)
