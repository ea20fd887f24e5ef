"""An experiment: a config file resolved into tasks, env settings, training settings and tensors.

The ``[train]`` table holds every number of the trainer (:class:`TrainConfig`, one docstring per
field); ``[env]`` and ``[features]`` the env settings; the data sections the tasks
(:mod:`market_metarl.data.tasks`). Training, the adaptation benchmark, the backtest and paper trading
all build their tensors through :func:`build_pool`, from the env's own task arrays and observation
builder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from market_metarl.config import build, check_sections, read_toml
from market_metarl.data.tasks import TaskSet, taskset_from_config
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.spec import EnvSpec, env_spec_from_config
from market_metarl.meta.episodes import TaskPool
from market_metarl.meta.policies import Head, PolicySpec
from market_metarl.types import ConfigError, TaskSpec

ALGOS: tuple[str, ...] = ("maml", "rl2", "pooled", "model_based", "pearl")
RL2_TRAINERS: tuple[str, ...] = ("bptt", "ppo")


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: how meta-training runs. Every number of the trainer is here.

    Attributes:
        algo: Default algorithm when the command line names none (``maml``, ``rl2``, ``pooled``,
            ``model_based``, ``pearl``).
        iterations: Outer iterations (meta-batches) of the main learner.
        meta_batch: Tasks per MAML meta-batch.
        adapt_days: K, support days a policy adapts on.
        horizon: H, query days traded after adapting.
        hidden: Hidden units of the MLP policies.
        layers: Hidden layers of the MLP policies.
        head: Policy head: ``deterministic``, ``categorical`` or ``gaussian``.
        position_input: Policies read the weight they hold (needed when trading costs).
        inner_steps: MAML inner gradient steps.
        inner_lr: MAML initial inner step size.
        learn_inner_lr: Learn per-parameter inner step sizes (Meta-SGD).
        first_order: First-order MAML (no second derivatives through the inner loop).
        outer_lr: Adam step size of the meta-learners.
        estimator: ``pathwise`` (back-propagate the PnL) or ``score_function`` (REINFORCE).
        rl2_hidden: GRU units of the RL^2 policy.
        rl2_batch: Task windows per RL^2 update.
        rl2_iterations: Updates of RL^2 (0: same as ``iterations``); BPTT updates are cheap and
            it needs more of them than MAML's meta-batches.
        rl2_trainer: How RL^2 is trained: ``bptt`` (default; back-propagation through time on
            the differentiable PnL, exact gradient) or ``ppo`` (clipped PPO on sampled actions,
            :mod:`market_metarl.meta.ppo`; far slower to learn, see its docstring).
        ppo_lr: Adam step size of RL^2 under PPO.
        ppo_epochs: PPO passes over each rollout of ``rl2_batch`` task windows.
        ppo_minibatches: Minibatches of task windows per PPO pass.
        ppo_clip: PPO clip range of the probability ratio (``1 +- ppo_clip``).
        ppo_gamma: Discount factor of the daily rewards under PPO (a weight earns mostly its own
            day, so a short horizon cuts the variance of the advantages).
        ppo_lambda: GAE parameter under PPO (1: Monte-Carlo returns, 0: one-step TD).
        ppo_entropy: Weight of the entropy bonus of the PPO loss.
        ppo_value_coef: Weight of the value loss of the PPO loss.
        ppo_init_log_std: Initial log standard deviation of PPO's pre-squash Gaussian actions.
        pooled_iterations: Updates of the pooled baseline (0: same as ``iterations``).
        pooled_batch: Task windows per pooled update.
        finetune_steps: Gradient steps of the fine-tune baseline on the support days.
        finetune_lr: Step size of the fine-tune baseline.
        scratch_steps: Gradient steps of the from-scratch baseline on the support days.
        scratch_lr: Step size of the from-scratch baseline.
        grad_clip: Global gradient-norm clip of the outer updates.
        mb_hidden: Hidden units of the model-based learner's return model.
        mb_layers: Hidden layers of the return model.
        mb_batch: Tasks per meta-batch of the model-based learner.
        mb_iterations: Meta-batches of the model-based learner (0: same as ``iterations``); its
            updates are cheap and the learned step sizes need many of them.
        mb_inner_steps: Gradient steps of the return model on the support days' likelihood.
        mb_inner_lr: Initial inner step size of the return model (learned if ``learn_inner_lr``).
        mb_inner_lr_lr: Adam step size of the return model's log inner step sizes (Meta-SGD);
            larger than ``outer_lr`` so they can move by orders of magnitude within the budget.
        mb_risk_aversion: The planner's gamma in ``w*m - 0.5*gamma*w^2*s^2 - cost``; 1 is the
            second-order expansion of the log growth that the other learners maximise.
        mb_online: The model-based agent keeps re-adapting on each day it trades (GrBAL).
        mb_memory_days: Most recent days' transitions the model-based agent adapts on.
        pearl_latent: Dimensions of PEARL's latent task variable.
        pearl_hidden: Hidden units of PEARL's context encoder (two layers).
        pearl_bilinear: The encoder also reads the products of next-day returns and features.
        pearl_batch: Task windows per PEARL update.
        pearl_iterations: Updates of PEARL (0: same as ``iterations``); with fewer than ~1000 on
            the synthetic family the posterior can collapse to the prior.
        pearl_kl_weight: Weight of the KL of PEARL's posterior to its unit Gaussian prior (0.1
            collapsed the posterior on the synthetic family: the PnL is in per cent a day).
        pearl_online: PEARL's posterior takes in each day traded (training and acting).
        pearl_memory_days: Most recent days' transitions PEARL's acting posterior keeps.
        pearl_film: PEARL's policy also reads every product of a latent dimension with a
            normalised feature (multiplicative, FiLM-style conditioning on the regime).
        checkpoint_every: Iterations between checkpoints (and metrics rows).
    """

    algo: str = "maml"
    iterations: int = 400
    meta_batch: int = 16
    adapt_days: int = 10
    horizon: int = 60
    hidden: int = 32
    layers: int = 1
    head: Head = "deterministic"
    position_input: bool = True
    inner_steps: int = 1
    inner_lr: float = 0.05
    learn_inner_lr: bool = True
    first_order: bool = False
    outer_lr: float = 3e-3
    estimator: Literal["pathwise", "score_function"] = "pathwise"
    rl2_hidden: int = 32
    rl2_batch: int = 64
    rl2_iterations: int = 0
    rl2_trainer: Literal["bptt", "ppo"] = "bptt"
    ppo_lr: float = 1e-3
    ppo_epochs: int = 4
    ppo_minibatches: int = 4
    ppo_clip: float = 0.2
    ppo_gamma: float = 0.9
    ppo_lambda: float = 0.9
    ppo_entropy: float = 0.0
    ppo_value_coef: float = 0.5
    ppo_init_log_std: float = -0.5
    pooled_iterations: int = 0
    pooled_batch: int = 32
    finetune_steps: int = 10
    finetune_lr: float = 0.05
    scratch_steps: int = 50
    scratch_lr: float = 0.1
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    mb_hidden: int = 32
    mb_layers: int = 1
    mb_batch: int = 16
    mb_iterations: int = 1500
    mb_inner_steps: int = 1
    mb_inner_lr: float = 0.1
    mb_inner_lr_lr: float = 0.03
    mb_risk_aversion: float = 1.0
    mb_online: bool = True
    mb_memory_days: int = 120
    pearl_latent: int = 8
    pearl_hidden: int = 64
    pearl_bilinear: bool = True
    pearl_batch: int = 32
    pearl_iterations: int = 1500
    pearl_kl_weight: float = 0.01
    pearl_online: bool = True
    pearl_memory_days: int = 120
    pearl_film: bool = True

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"train.algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.adapt_days < 2:
            raise ConfigError(f"train.adapt_days must be >= 2, got {self.adapt_days}")
        for name in (
            "iterations",
            "meta_batch",
            "horizon",
            "rl2_batch",
            "pooled_batch",
            "hidden",
            "layers",
            "rl2_hidden",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_lr", "outer_lr", "finetune_lr", "scratch_lr", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")
        if self.checkpoint_every < 1:
            raise ConfigError("train.checkpoint_every must be >= 1")
        self._check_ppo()
        self._check_model_based_and_pearl()

    def _check_model_based_and_pearl(self) -> None:
        for name in (
            "mb_hidden",
            "mb_layers",
            "mb_batch",
            "mb_memory_days",
            "pearl_latent",
            "pearl_hidden",
            "pearl_batch",
            "pearl_memory_days",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("mb_inner_steps", "mb_iterations", "pearl_iterations", "pearl_kl_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("mb_inner_lr", "mb_inner_lr_lr", "mb_risk_aversion"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")

    def _check_ppo(self) -> None:
        if self.rl2_trainer not in RL2_TRAINERS:
            raise ConfigError(
                f"train.rl2_trainer must be one of {', '.join(RL2_TRAINERS)}, "
                f"got {self.rl2_trainer!r}"
            )
        for name in ("ppo_epochs", "ppo_minibatches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.ppo_minibatches > self.rl2_batch:
            raise ConfigError(
                f"train.ppo_minibatches ({self.ppo_minibatches}) must be <= train.rl2_batch "
                f"({self.rl2_batch}): minibatches split the batch's task windows"
            )
        for name in ("ppo_lr", "ppo_clip"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")
        for name in ("ppo_gamma", "ppo_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"train.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("ppo_entropy", "ppo_value_coef"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def window_days(self) -> int:
        """Decision days of one support + query window."""
        return self.adapt_days - 1 + self.horizon

    def policy_spec(self, env: EnvSpec, recurrent: bool = False) -> PolicySpec:
        return PolicySpec(
            hidden=self.rl2_hidden if recurrent else self.hidden,
            layers=self.layers,
            head=self.head,
            levels=env.levels,
            max_leverage=env.max_leverage,
            long_only=env.long_only,
            position_input=self.position_input,
        )


@dataclass(frozen=True)
class Experiment:
    """Everything a config file resolves to."""

    config: dict[str, Any]
    tasks: TaskSet
    env: EnvSpec
    train: TrainConfig

    @classmethod
    def from_file(cls, path: str) -> Experiment:
        cfg = read_toml(path)
        check_sections(cfg, path)
        return cls.from_config(cfg)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Experiment:
        env = env_spec_from_config(cfg)
        train = build(TrainConfig, cfg.get("train"), "train")
        tasks = taskset_from_config(cfg)
        return cls(cfg, tasks, env, train)

    def markets(self, tasks: Sequence[TaskSpec]) -> list[TaskMarket]:
        loaded: dict[str, Any] = {}  # each source read once for all its tasks
        return [TaskMarket.from_tasks(t, self.env.features, self.env.window, loaded) for t in tasks]

    def pool(self, split: Literal["train", "val", "test"]) -> TaskPool:
        return build_pool(self, self.tasks.split(split))


def build_pool(exp: Experiment, tasks: Sequence[TaskSpec]) -> TaskPool:
    """Tensors of ``tasks`` under the experiment's env settings and costs."""
    if not tasks:
        raise ConfigError("no tasks in this split; check [splits] and [data] in the config")
    return TaskPool(exp.markets(tasks), exp.env, exp.tasks.costs)
