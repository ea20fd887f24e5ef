"""The trainer: meta-train one algorithm (and its pooled twin) into a run directory.

The algorithm comes from the registry (:mod:`market_metarl.meta.registry`): its ``build`` makes a
learner, and the loop below drives every learner the same way through the
:class:`~market_metarl.meta.contracts.Learner` contract. The run directory's files are
:mod:`market_metarl.meta.rundir`'s business. ``--resume`` continues from the last checkpoint and
ends with the same parameters as an uninterrupted run.

The loop reads top to bottom: # setup, then per learner # rollout / # optimize / # log /
# checkpoint. What is logged (``metrics.csv``, TensorBoard) is :mod:`market_metarl.meta.trainlog`'s
business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from market_metarl.meta.contracts import Learner
from market_metarl.meta.episodes import TaskPool
from market_metarl.meta.experiment import BuildContext, Experiment
from market_metarl.meta.registry import get_algorithm
from market_metarl.meta.rundir import (
    Shapes,
    checkpoint_path,
    discard_if_unfinished,
    learner_names,
    load_checkpoint,
    open_run,
    restore,
    save_checkpoint,
    trim_metrics,
    write_run_json,
)
from market_metarl.meta.selection import Best, Selection
from market_metarl.meta.trainlog import TrainLog
from market_metarl.parallel import LOCAL, Backend
from market_metarl.seeding import child_seed
from market_metarl.types import RunError


@dataclass
class TrainEvent:
    """What the trainer reports after each metrics row (no peeking at ``locals()``).

    ``metrics`` is the row: each of the learner's step stats, averaged since the previous row.
    """

    learner: str
    iteration: int
    total: int
    metrics: dict[str, float]


def build_learner(
    name: str,
    exp: Experiment,
    shapes: Shapes,
    seed: int,
    observations: torch.Tensor | None = None,
    backend: Backend = LOCAL,
) -> Learner:
    """A fresh learner of algorithm ``name``, its networks initialised from ``seed``.

    ``observations`` (meta-training tasks only) fit the input normalisers; a learner that will
    load a checkpoint does not need them. ``backend`` runs per-task pieces of a meta-batch (MAML,
    when not vectorised).
    The global RNG is left untouched.

    Raises:
        ConfigError: Unknown algorithm (the message lists the registered ones).
    """
    ctx = BuildContext(
        exp, shapes.obs_dim, shapes.n_assets, shapes.position, seed, observations, backend
    )
    return get_algorithm(name).build(ctx)


def train(
    exp: Experiment,
    algo: str,
    out: str | Path,
    seed: int = 0,
    resume: bool = False,
    on_event: Callable[[TrainEvent], None] | None = None,
    backend: Backend = LOCAL,
) -> Path:
    """Meta-train ``algo`` (and its pooled twin) on the experiment's train tasks into ``out``.

    ``backend`` (:mod:`market_metarl.parallel`) runs the per-task pieces of each meta-batch (MAML
    with ``[train.maml] vectorised = false``); the parameters and metrics are the same with every
    backend. Torch runs on ``[train] threads``
    intra-op threads meanwhile; the caller's number is restored on return.

    Metrics rows (``metrics.csv``, and TensorBoard under ``[train] tensorboard``) are written
    every ``[train] log_every`` iterations and at each checkpoint (:mod:`.trainlog`). Under
    ``[train] select_on = "val"`` every learner is scored on the validation tasks every
    ``select_every`` iterations and keeps its best weights (:mod:`.selection`).

    Raises:
        ConfigError: Unknown algorithm, TensorBoard asked for and not installed, or selection
            on validation asked for with no validation task long enough.
        RunError: ``out`` holds a different run (or one that cannot be resumed).
    """
    # setup: every check that needs no training is made before the run directory is written
    run_dir = Path(out)
    learners = learner_names(algo, get_algorithm(algo).with_pooled)
    pool = exp.pool("train")
    pool.require(exp.train.window_days)
    shapes = Shapes.of(pool)
    log = TrainLog.of(run_dir, exp.train)
    selection = Selection.of(exp)
    with discard_if_unfinished(run_dir, fresh=not resume):
        state = open_run(run_dir, exp, algo, learners, seed, resume)
        state["shapes"] = shapes.to_json()
        _train_learners(
            exp,
            run_dir,
            learners,
            state,
            pool,
            shapes,
            seed,
            resume,
            on_event,
            backend,
            log,
            selection,
        )
    return run_dir


def _train_learners(
    exp: Experiment,
    run_dir: Path,
    learners: list[str],
    state: dict[str, Any],
    pool: TaskPool,
    shapes: Shapes,
    seed: int,
    resume: bool,
    on_event: Callable[[TrainEvent], None] | None,
    backend: Backend,
    log: TrainLog,
    selection: Selection | None,
) -> None:
    """The training loop of :func:`train`, over each learner in turn."""
    observations = pool.all_observations()
    # one torch thread by default (small tensors), the caller's setting restored afterwards;
    # the log's TensorBoard writer closed however the loop ends
    with torch_threads(exp.train.threads), log:
        for index, name in enumerate(learners):
            learner = build_learner(
                name, exp, shapes, child_seed(seed, index, 0), observations, backend
            )
            rng = np.random.default_rng(child_seed(seed, index, 1))
            done = _iterations_done(run_dir, name, state, learner, rng, resume)
            best = _best_so_far(run_dir, name, done)
            log.begin(name, done)
            for it in range(done, learner.iterations):
                # rollout: sample task windows (support + query days)
                episode = pool.sample(learner.batch, exp.train.window_days, rng)
                # optimize
                stats = learner.step(episode)
                # log: a metrics row every [train] log_every iterations and at each checkpoint
                ends = (it + 1) % exp.train.checkpoint_every == 0 or it + 1 == learner.iterations
                metrics = log.record(it + 1, stats, ends_interval=ends)
                # select: score on the validation tasks, keep the best weights (no gradient)
                if selection is not None and selection.due(it + 1, learner.iterations):
                    score = selection.score(learner)
                    log.validation(it + 1, score)
                    best = selection.offer(best, learner, it + 1, score)
                # checkpoint: after the metrics rows; a kill anywhere in between resumes exactly
                if ends:
                    _checkpoint(run_dir, name, learner, rng, it + 1, state, best)
                if metrics is not None and on_event is not None:
                    on_event(TrainEvent(name, it + 1, learner.iterations, metrics))


def _checkpoint(
    run_dir: Path,
    name: str,
    learner: Learner,
    rng: np.random.Generator,
    iteration: int,
    state: dict[str, Any],
    best: Best | None,
) -> None:
    """Write learner ``name``'s checkpoint (with its best weights so far), then ``run.json``."""
    selected = None if best is None else best.payload()
    save_checkpoint(checkpoint_path(run_dir, name), learner, rng, iteration, selected)
    state["iterations"][name] = iteration
    if best is not None:
        state.setdefault("selected", {})[name] = best.to_json()
    write_run_json(run_dir, state)


def _best_so_far(run_dir: Path, name: str, done: int) -> Best | None:
    """The best weights learner ``name``'s checkpoint holds (None for a new or unselected run)."""
    if not done:
        return None
    return Best.from_payload(load_checkpoint(checkpoint_path(run_dir, name), name).get("selected"))


def _iterations_done(
    run_dir: Path,
    name: str,
    state: dict[str, Any],
    learner: Learner,
    rng: np.random.Generator,
    resume: bool,
) -> int:
    """Iterations learner ``name`` has done: 0 in a new run; on resume, its checkpoint's.

    Resuming restores ``learner`` and ``rng`` from the checkpoint.

    Raises:
        RunError: ``run.json`` counts iterations whose checkpoint is missing.
    """
    done = int(state["iterations"].get(name, 0))
    checkpoint = checkpoint_path(run_dir, name)
    if done and not checkpoint.is_file():
        raise RunError(f"checkpoint {checkpoint} is missing; train into a new --out")
    if resume:
        # the checkpoint is the truth (none yet: iteration 0): a run killed between writing
        # metrics, the checkpoint and run.json resumes from the checkpoint, and metrics rows
        # past it (or cut short) are dropped, so nothing is repeated or duplicated
        done = restore(checkpoint, learner, rng) if checkpoint.is_file() else 0
        trim_metrics(run_dir / "metrics.csv", name, done)
    return done


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch's intra-op threads set to ``threads`` inside the block, the previous value after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def with_threads(exp: Experiment, threads: int | None) -> Experiment:
    """The experiment with ``train.threads`` overridden (the CLI's ``--threads``)."""
    if threads is None:
        return exp
    return replace(exp, train=replace(exp.train, threads=threads))


def with_tensorboard(exp: Experiment, directory: str | None) -> Experiment:
    """The experiment with ``train.tensorboard`` set to ``directory`` (the CLI's ``--tensorboard``)."""
    if directory is None:
        return exp
    return replace(exp, train=replace(exp.train, tensorboard=directory))


def with_iterations(exp: Experiment, iterations: int | None) -> Experiment:
    """The experiment with ``train.iterations`` overridden (the CLI's ``--iterations``).

    It sets the iterations of every learner whose table does not set its own.
    """
    if iterations is None:
        return exp
    return replace(exp, train=replace(exp.train, iterations=iterations))
