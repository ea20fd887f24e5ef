"""Checkpoint selection on validation tasks (``[train] select_on = "val"``).

A learner trained too long overfits its training regimes (issue 16: RL^2 with 400 updates scored
0.12 on held-out assets where 200 updates scored 0.48). Under ``select_on = "val"`` the trainer
scores every learner (the pooled twin too, so comparisons stay fair) every ``select_every``
iterations and at its last one, with :func:`~market_metarl.meta.evaluation.validation_score`: the
mean over the ``[splits] val`` tasks of the Sharpe ratio of the H query days traded after
adapting on the task's first K days. The best-scoring weights are kept (ties keep the earlier
iteration) and are what :class:`~market_metarl.meta.run.TrainedRun` loads.

Validation never enters a gradient: scoring reads the learner's agent (its networks, not its
optimiser or RNGs) under no optimiser step, and runs inside a forked global torch RNG, so the
training trajectory is the one ``select_on = "none"`` gives, bit for bit. Only the validation
tasks are read (never ``test``).

Where it is kept: the checkpoint's ``selected`` part (:func:`~market_metarl.meta.rundir.
save_checkpoint`) beside the latest weights that ``--resume`` continues from, so a resumed run
knows its best so far; ``run.json``'s ``selected`` records each learner's chosen iteration and
score, and ``metrics.csv`` a ``val_score`` row at each scored iteration.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.contracts import Learner
from market_metarl.meta.episodes import Episode
from market_metarl.meta.evaluation import validation_score
from market_metarl.meta.experiment import Experiment
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class Best:
    """The best-scoring weights of one learner so far.

    Attributes:
        iteration: Iterations done when they were scored.
        score: Their :func:`~market_metarl.meta.evaluation.validation_score`.
        agent: A copy of the learner's ``agent_state()`` then.
    """

    iteration: int
    score: float
    agent: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """What ``run.json`` records of it (the weights stay in the checkpoint)."""
        return {"iteration": self.iteration, "score": self.score}

    def payload(self) -> dict[str, Any]:
        """The checkpoint's ``selected`` part."""
        return {"iteration": self.iteration, "score": self.score, "agent": self.agent}

    @classmethod
    def from_payload(cls, part: dict[str, Any] | None) -> Best | None:
        """The best so far a checkpoint holds (None for one written without selection)."""
        if part is None:
            return None
        return cls(int(part["iteration"]), float(part["score"]), part["agent"])


class Selection:
    """The validation tasks and the schedule of a run under ``select_on = "val"``."""

    def __init__(self, episode: Episode, k_days: int, horizon: int, every: int) -> None:
        """Score on ``episode`` (the validation tasks' first ``k_days - 1 + horizon`` days).

        Args:
            episode: One row per validation task long enough for K + H days.
            k_days: K support days.
            horizon: H query days.
            every: Iterations between scores.
        """
        self.episode, self.k_days, self.horizon, self.every = episode, k_days, horizon, every
        self.seconds = 0.0
        """Wall-clock seconds spent scoring (the overhead a benchmark reports)."""

    @classmethod
    def of(cls, exp: Experiment) -> Selection | None:
        """The experiment's selection, or None under ``select_on = "none"``.

        Raises:
            ConfigError: No validation task has the K - 1 + H decision days scoring needs.
        """
        train = exp.train
        if train.select_on == "none":
            return None
        days = train.window_days
        pool = exp.pool("val")
        rows = [int(r) for r in pool.eligible(days)]
        if not rows:
            raise ConfigError(
                f'train.select_on = "val": no validation task has the {days} decision days '
                f"adapt_days - 1 + horizon needs (longest: {int(pool.lengths.max())}); lengthen "
                "[splits] val or raise regimes.min_task_days"
            )
        return cls(pool.episode(rows, days), train.adapt_days, train.horizon, train.select_every)

    def due(self, iteration: int, total: int) -> bool:
        """Whether iteration ``iteration`` (counted from 1) of ``total`` is scored."""
        return iteration % self.every == 0 or iteration == total

    def score(self, learner: Learner) -> float:
        """The learner's current validation score (its state and the global RNGs left as found).

        The global torch RNG is forked and seeded, so the score does not depend on what ran
        before and training after it draws what it would have drawn.
        """
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            value = validation_score(learner.agent(), self.episode, self.k_days, self.horizon)
        self.seconds += time.perf_counter() - start
        return value

    def offer(self, best: Best | None, learner: Learner, iteration: int, score: float) -> Best:
        """The better of ``best`` and the learner's weights now (``best`` on a tie)."""
        if best is not None and not score > best.score:
            return best
        return Best(iteration, score, copy.deepcopy(learner.agent_state()))
