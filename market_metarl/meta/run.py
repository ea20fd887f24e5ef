"""A trained run, loaded: its experiment and every agent the backtest and paper trading compare.

Agents by strategy name: ``adapted`` (the run's algorithm: MAML, RL^2 or, for a pooled-only run,
the pooled policy), ``pooled`` (no adaptation), ``finetune`` (pooled plus gradient steps on the
support days), ``scratch`` (a fresh policy trained on the support days only) and ``buy_and_hold``.
Fine-tune and scratch are computed at adaptation time from the run's pooled policy and settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_metarl.data.tasks import TaskSet
from market_metarl.envs.spec import EnvSpec
from market_metarl.meta.agents import ConstantAgent
from market_metarl.meta.algos.pooled import PooledConfig, PooledLearner
from market_metarl.meta.contracts import Agent, Learner
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.protocol import MarketView, market_view
from market_metarl.meta.rundir import (
    Shapes,
    checkpoint_path,
    kept,
    load_agent_part,
    load_checkpoint,
    read_run_json,
    run_shapes,
)
from market_metarl.meta.runtasks import experiment_of_run
from market_metarl.meta.trainer import build_learner
from market_metarl.types import CostSpec, RunError, TaskSpec

if TYPE_CHECKING:
    import pandas as pd

STRATEGIES: tuple[str, ...] = ("adapted", "pooled", "finetune", "scratch", "buy_and_hold")


@dataclass
class TrainedRun:
    """A run directory opened for use.

    Checkpoints are read once and kept (:meth:`learner`), so a copy of an opened run, shipped to
    the workers of a distributed backtest, rebuilds every agent without reading ``path``.
    """

    path: Path
    state: dict[str, Any]
    experiment: Experiment
    shapes: Shapes
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainedRun:
        """Open ``path``; a missing, unfinished or corrupt run raises :class:`RunError`."""
        run_dir = Path(path)
        if not run_dir.is_dir():
            raise RunError(
                f"run directory {run_dir} does not exist; train one with `market-metarl train`"
            )
        state = read_run_json(run_dir)
        exp = experiment_of_run(run_dir, state, overrides)
        return cls(run_dir, state, exp, run_shapes(run_dir))

    @property
    def algo(self) -> str:
        """The run's algorithm (a name in :mod:`market_metarl.meta.registry`)."""
        return str(self.state["algo"])

    @property
    def seed(self) -> int:
        """The root seed the run was trained with."""
        return int(self.state.get("seed", 0))

    @property
    def config_digest(self) -> str:
        """Digest of the resolved config the run was trained with (``run.json``)."""
        return str(self.state.get("config"))

    @property
    def env_spec(self) -> EnvSpec:
        """The env settings (features, window, leverage...) the run's policies read and trade."""
        return self.experiment.env

    @property
    def costs(self) -> CostSpec:
        """The run's trading costs."""
        return self.experiment.tasks.costs

    @property
    def tasks(self) -> TaskSet:
        """The run's task set (data, regimes, splits)."""
        return self.experiment.tasks

    @property
    def adapt_days(self) -> int:
        """K, the support days the run's agents adapt on."""
        return self.experiment.train.adapt_days

    @property
    def horizon(self) -> int:
        """H, the query days the run's agents were trained to trade after adapting."""
        return self.experiment.train.horizon

    @property
    def n_assets(self) -> int:
        """Assets the run's policies trade at once."""
        return self.shapes.n_assets

    def test_tasks(self) -> list[TaskSpec]:
        """The run's held-out test tasks."""
        return list(self.experiment.tasks.split("test"))

    def market_view(
        self, bars: pd.DataFrame, symbol: str = "asset", live: bool = False, validate: bool = True
    ) -> MarketView:
        """The view of a bars frame under the run's env settings and costs.

        See :func:`market_metarl.meta.protocol.market_view` for ``symbol``, ``live`` and
        ``validate``.
        """
        return market_view(bars, self.experiment, self.costs, symbol, live, validate)

    def section(self, name: str) -> dict[str, Any]:
        """A free-form table of the run's config (``paper``...), empty when absent."""
        return dict(self.experiment.config.get(name) or {})

    def learner(self, name: str) -> Learner:
        """The run's trained learner ``name`` (its checkpoint read on first use).

        Only the checkpoint's agent part is loaded: the learner's optimiser stays fresh. Under
        ``[train] select_on = "val"`` it is the weights selected on validation (``run.json``'s
        ``selected`` says which iteration), else the last ones.
        """
        if name not in self.payloads:
            self.payloads[name] = kept(load_checkpoint(checkpoint_path(self.path, name), name))
        learner = build_learner(name, self.experiment, self.shapes, 0)
        load_agent_part(learner, self.payloads[name], checkpoint_path(self.path, name))
        return learner

    def agent(self, strategy: str, seed: int = 0) -> Agent:
        """The agent behind a strategy name (see :data:`STRATEGIES`)."""
        if strategy == "buy_and_hold":
            return ConstantAgent(1.0, "buy_and_hold")
        if strategy == "adapted":
            learner = self.learner(self.algo)
            agent = learner.agent()
            agent.name = "adapted"
            return agent
        pooled = self.learner("pooled")
        assert isinstance(pooled, PooledLearner)
        cfg: PooledConfig = self.experiment.train.of("pooled")
        if strategy == "pooled":
            return pooled.agent()
        if strategy == "finetune":
            return pooled.finetune_agent(cfg.finetune_steps, cfg.finetune_lr)
        if strategy == "scratch":
            return pooled.scratch_agent(cfg.scratch_steps, cfg.scratch_lr, seed)
        raise RunError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
