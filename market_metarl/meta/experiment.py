"""An experiment: a config file resolved into tasks, env settings, training settings and tensors.

The ``[train]`` table holds the settings every learner shares (:class:`TrainConfig`, one docstring
per field) and one ``[train.<algo>]`` table per algorithm (its config class, in
``market_metarl.meta.algos.<algo>``); ``[env]`` and ``[features]`` the env settings; the data sections the tasks
(:mod:`market_metarl.data.tasks`). Training, the adaptation benchmark, the backtest and paper trading
all build their tensors through :func:`build_pool`, from the env's own task arrays and observation
builder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from market_metarl.config import build, read_config, to_table
from market_metarl.data.context_check import resolve_context
from market_metarl.data.tasks import DataSection, TaskSet, check_warmup_days, taskset_from_config
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.spec import EnvSpec, env_spec_from_config
from market_metarl.meta.contracts import check_adapt_days
from market_metarl.meta.episodes import TaskPool
from market_metarl.meta.moved_keys import MOVED
from market_metarl.meta.objectives import Objective, ObjectiveName
from market_metarl.meta.policies import Head, MLPPolicy, PolicySpec, seeded_mlp
from market_metarl.meta.registry import algorithm_names, check_name, get_algorithm
from market_metarl.meta.sizing import read_volatility, vol_indices
from market_metarl.parallel import Backend
from market_metarl.types import ConfigError, TaskSpec


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: the settings every learner shares.

    Each algorithm's own settings are in its ``[train.<algo>]`` table (its config class in
    ``market_metarl.meta.algos.<algo>``).

    Attributes:
        algo: Default algorithm when the command line names none (a registered name:
            ``maml``, ``rl2``, ``rl2_ppo``, ``pooled``, ``model_based``, ``pearl``).
        iterations: Outer iterations (updates) of a learner whose table sets none.
        adapt_days: K, support days a policy adapts on.
        horizon: H, query days traded after adapting.
        hidden: Hidden units of the MLP policies.
        layers: Hidden layers of the MLP policies.
        head: Policy head: ``deterministic``, ``categorical`` or ``gaussian``.
        position_input: Policies read the weight they hold (needed when trading costs).
        outer_lr: Adam step size of the learners (unless their table sets their own).
        estimator: ``pathwise`` (back-propagate the PnL) or ``score_function`` (REINFORCE), for
            the MLP learners (MAML and pooled).
        grad_clip: Global gradient-norm clip of the updates.
        checkpoint_every: Iterations between checkpoints (a metrics row is written at each).
        select_on: ``"none"`` (the default: a run keeps its last weights) or ``"val"``: every
            ``select_every`` iterations, and at the last, each learner (its pooled twin too) is
            scored on the ``[splits] val`` tasks (adapted on each task's first K days, then
            trading the next H: the mean Sharpe ratio of :func:`~market_metarl.meta.evaluation.
            validation_score`) and the run keeps the best-scoring weights
            (:mod:`market_metarl.meta.selection`). Validation never enters a gradient: the
            training trajectory is the same as with ``"none"``.
        select_every: Iterations between validation scores under ``select_on = "val"``; when
            not set, ``checkpoint_every``.
        log_every: Iterations between metrics rows (``metrics.csv`` and TensorBoard), each the
            mean of the learner's step stats since the last row; a row is also written at every
            checkpoint and at a learner's last iteration (:mod:`market_metarl.meta.trainlog`).
            An execution setting.
        tensorboard: TensorBoard scalars: ``false`` (none), ``true`` (in the run directory's
            ``tb/<learner>/``) or a directory ``"DIR"`` (in ``DIR/<run dir name>/<learner>/``);
            needs ``pip install tensorboard``. An execution setting.
        vol_target: Volatility-scaled positions when > 0 (annualised, e.g. 0.15): the policy's
            output is a signal and its weight ``signal * min(vol_target / sigma_hat_t,
            max_leverage)`` (:class:`~market_metarl.meta.policies.PolicySpec`); needs the ``vol``
            feature (``[features] vol_window >= 2``). MAML, the pooled twin and RL^2.
        objective: ``log_return``, ``sharpe`` or ``mean_variance``: what the pathwise learners
            fit, in training and in adaptation (:mod:`market_metarl.meta.objectives`).
        risk_aversion: Weight of the variance under ``mean_variance``.
        turnover_bps: Extra charge per unit of traded weight in the objective (basis points).
        threads: Torch intra-op threads while training (set by the trainer, the previous value
            restored afterwards). The learners' tensors are small: one thread is usually the
            fastest, and leaves the other cores to other runs (``benchmarks/training_speed.py``).
            An execution setting like the backend: not part of the run's config digest.
        tables: Every algorithm's resolved settings, by name (filled from the ``[train.<algo>]``
            tables by :meth:`Experiment.from_config`; defaults for the others).
    """

    algo: str = "maml"
    iterations: int = 400
    adapt_days: int = 10
    horizon: int = 60
    hidden: int = 32
    layers: int = 1
    head: Head = "deterministic"
    position_input: bool = True
    outer_lr: float = 3e-3
    estimator: Literal["pathwise", "score_function"] = "pathwise"
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    select_on: Literal["none", "val"] = "none"
    select_every: int = 50
    vol_target: float = 0.0
    objective: ObjectiveName = "log_return"
    risk_aversion: float = 1.0
    turnover_bps: float = 0.0
    log_every: int = 5
    tensorboard: bool | str = False
    threads: int = 1
    tables: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        """Reject an unknown algorithm, a K under 2, and sizes or step sizes out of range.

        Raises:
            ConfigError: The message names the ``train.*`` setting and the value given.
        """
        check_name(self.algo)
        check_adapt_days(self.adapt_days, "train.adapt_days")
        sizes = ("iterations", "horizon", "hidden", "layers", "checkpoint_every", "select_every")
        for name in (*sizes, "log_every", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.tensorboard == "":
            raise ConfigError(
                'train.tensorboard must be true, false or a directory such as "runs/tb", got ""'
            )
        for name in ("outer_lr", "grad_clip"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be > 0, got {getattr(self, name)}")
        self.objective_spec()

    def objective_spec(self) -> Objective:
        """The pathwise learners' :class:`~market_metarl.meta.objectives.Objective`."""
        return Objective(self.objective, self.risk_aversion, self.turnover_bps)

    @property
    def window_days(self) -> int:
        """Decision days of one support + query window."""
        return self.adapt_days - 1 + self.horizon

    def of(self, algo: str) -> Any:
        """The resolved settings of ``algo`` (its ``[train.<algo>]`` table over its defaults)."""
        if algo not in self.tables:
            return get_algorithm(algo).config()
        return self.tables[algo]

    def iterations_of(self, own: int) -> int:
        """An algorithm's iterations: its own setting, or ``iterations`` when that is 0."""
        return own or self.iterations

    def policy_spec(self, env: EnvSpec, hidden: int | None = None) -> PolicySpec:
        """The policy network's settings under ``env`` (``hidden`` overrides the MLP width)."""
        return PolicySpec(
            hidden=hidden or self.hidden,
            layers=self.layers,
            head=self.head,
            levels=env.levels,
            max_leverage=env.max_leverage,
            long_only=env.long_only,
            position_input=self.position_input,
            vol_target=self.vol_target,
            objective=self.objective_spec(),
        )


def train_config(table: Mapping[str, Any] | None) -> TrainConfig:
    """``[train]`` with its ``[train.<algo>]`` tables, strictly.

    Raises:
        ConfigError: A flat key of the old layout (the message names its new table), an unknown
            key or table, or a bad value.
    """
    table = dict(table or {})
    if "rl2_trainer" in table:
        raise ConfigError(
            "train.rl2_trainer is gone: PPO-trained RL^2 is its own algorithm; use --algo "
            'rl2_ppo (or train.algo = "rl2_ppo") with its settings under [train.rl2_ppo]'
        )
    for key in table:
        if key in MOVED:
            algo, name = MOVED[key].split(".")
            raise ConfigError(
                f"train.{key} moved to its algorithm's table: write `{name} = ...` under "
                f"[train.{algo}] (see envs/default.toml)"
            )
    if "tables" in table:
        raise ConfigError(
            "train.tables is not a setting; write each algorithm's [train.<algo>] table"
        )
    # select_every defaults to checkpoint_every (its own default when that is not set either)
    table.setdefault("select_every", table.get("checkpoint_every", TrainConfig.checkpoint_every))
    names = algorithm_names()
    sub = {k: table.pop(k) for k in list(table) if k in names and isinstance(table[k], dict)}
    tables = {k: build(get_algorithm(k).config, v, f"train.{k}") for k, v in sub.items()}
    try:
        cfg = build(TrainConfig, table, "train")
    except ConfigError as exc:
        if "unknown key" in str(exc):
            raise ConfigError(f"{exc}; algorithm tables: {', '.join(names)}") from None
        raise
    return replace(cfg, tables=tables)


def train_table(cfg: TrainConfig, algos: Sequence[str]) -> dict[str, Any]:
    """``[train]`` as a TOML-ready dict, with the resolved tables of ``algos`` nested in it."""
    out = {k: v for k, v in to_table(cfg).items() if k != "tables"}
    for algo in algos:
        out[algo] = to_table(cfg.of(algo))
    return out


@dataclass(frozen=True)
class Experiment:
    """Everything a config file resolves to."""

    config: dict[str, Any]
    tasks: TaskSet
    env: EnvSpec
    train: TrainConfig

    @classmethod
    def from_file(cls, path: str) -> Experiment:
        """Read and resolve the TOML config at ``path`` (unknown sections are refused).

        Raises:
            ConfigError: An unknown section, key or algorithm table, or a bad value.
            DataError: The data cannot be read, or give no training task under the splits.
        """
        return cls.from_config(read_config(path))

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Experiment:
        """Read and resolve the TOML config at ``path`` with tables overridden.

        Args:
            path: The config file (``envs/default.toml``...).
            **overrides: Tables merged over the file's, key by key (see
                :func:`~market_metarl.config.read_config`), e.g.
                ``train={"iterations": 2, "pooled": {"iterations": 2}}``.

        Raises:
            ConfigError: An unknown section, key or algorithm table, or a bad value.
            DataError: The data cannot be read, or give no training task under the splits.
        """
        return cls.from_config(read_config(path, overrides))

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], recorded: Sequence[TaskSpec] | None = None
    ) -> Experiment:
        """Resolve a parsed config: env settings, ``[train]`` with its tables, then the tasks.

        Args:
            cfg: The config as parsed TOML; kept as it is in :attr:`config`.
            recorded: The tasks a trained run recorded (:mod:`~market_metarl.meta.runtasks`),
                used as they are: no data is read. None builds them from the data.

        Raises:
            ConfigError: A bad ``[env]``, ``[features]``, ``[train]`` or data setting.
            DataError: The data cannot be read, or give no training task under the splits.
        """
        env = env_spec_from_config(cfg)
        train = train_config(cfg.get("train"))
        data = build(DataSection, cfg.get("data"), "data")
        check_warmup_days(data, env.features, env.window)  # before any data is read
        env = replace(env, features=resolve_context(env.features, data, recorded is None))
        tasks = taskset_from_config(cfg, recorded)
        if train.select_on == "val" and not tasks.split("val"):
            raise ConfigError(
                'train.select_on = "val" scores checkpoints on the validation tasks, and this '
                "config has none: set [splits] val (a period between train and test) or "
                'select_on = "none"'
            )
        return cls(cfg, tasks, env, train)

    def markets(self, tasks: Sequence[TaskSpec]) -> list[TaskMarket]:
        """Each task's arrays under the env's features and window (each source read once)."""
        loaded: dict[str, Any] = {}  # each source read once for all its tasks
        return [TaskMarket.from_tasks(t, self.env.features, self.env.window, loaded) for t in tasks]

    def pool(self, split: Literal["train", "val", "test"]) -> TaskPool:
        """The tensors of one split's tasks (see :func:`build_pool`)."""
        return build_pool(self, self.tasks.split(split))


def build_pool(exp: Experiment, tasks: Sequence[TaskSpec]) -> TaskPool:
    """Tensors of ``tasks`` under the experiment's env settings and costs."""
    if not tasks:
        raise ConfigError("no tasks in this split; check [splits] and [data] in the config")
    return TaskPool(exp.markets(tasks), exp.env, exp.tasks.costs)


@dataclass(frozen=True)
class BuildContext:
    """What an algorithm's ``build`` gets to make a fresh learner.

    Attributes:
        experiment: The resolved experiment (env settings, costs, ``[train]`` and its tables).
        obs_dim: Observation size per decision.
        n_assets: Assets traded at once.
        position: Where the held weights sit in the observation (``start, stop``).
        seed: Seed of the network initialisation and the learner's private RNGs.
        observations: The training tasks' observations to fit input normalisers on; None when a
            checkpoint will be loaded.
        backend: Runs per-task pieces of a meta-batch (MAML with ``[train.maml] vectorised =
            false``); the other learners, and MAML by default, vectorise over the batch.
    """

    experiment: Experiment
    obs_dim: int
    n_assets: int
    position: tuple[int, int]
    seed: int
    observations: torch.Tensor | None = None
    backend: Backend | None = None

    @property
    def position_slice(self) -> slice:
        """The held weights' slice of an observation."""
        return slice(*self.position)

    def mlp_policy(self) -> MLPPolicy:
        """The ``[train]`` MLP policy of MAML and the pooled twin, seeded from ``seed``.

        Its normaliser is fitted on ``observations`` when given, and its position input is masked
        unless ``train.position_input``.
        """
        train = self.experiment.train
        spec = train.policy_spec(self.experiment.env)
        policy = seeded_mlp(self.obs_dim, self.n_assets, spec, self.seed)
        if self.observations is not None:
            policy.norm.fit(self.observations, keep=self.position_slice)
        if not train.position_input:
            policy.mask_inputs(self.position_slice)
        if train.vol_target:
            read_volatility(policy, self.vol_indices())
        return policy

    def plain_objective_only(self, algo: str) -> None:
        """Refuse the pathwise objectives and volatility scaling for a learner without them.

        Raises:
            ConfigError: ``train.objective``, ``train.turnover_bps`` or ``train.vol_target`` is
                set away from its default.
        """
        train = self.experiment.train
        if train.vol_target or not train.objective_spec().is_default:
            raise ConfigError(
                f"{algo} trains on the mean log return with unscaled weights; train.objective, "
                "train.turnover_bps and train.vol_target apply to maml, pooled and rl2 only: "
                "leave them at their defaults for this algorithm"
            )

    def vol_indices(self) -> list[int]:
        """Where each asset's decision-day ``vol`` feature sits (:func:`~.sizing.vol_indices`)."""
        return vol_indices(self.experiment.env, self.n_assets)
