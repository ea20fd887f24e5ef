"""What a training run logs, decided in one place: metrics rows, TensorBoard scalars, timing.

The trainer hands :class:`TrainLog` the stats of each iteration (what the learner's ``step``
returns). Every ``[train] log_every`` iterations, at every checkpoint and at a learner's last
iteration it writes one row, the mean of each stat over the iterations since the last row:

- ``metrics.csv`` (:func:`~market_metarl.meta.rundir.append_metrics`): the learner's stats and
  nothing that varies between runs, so one seed writes the same file byte for byte, resumed,
  distributed or logged to TensorBoard or not. Rows fall on the same iterations whether or not
  the run was resumed (a resumed run starts at a checkpoint, where a row was written).
- TensorBoard (optional: ``[train] tensorboard`` or ``market-metarl train --tensorboard DIR``),
  step = iteration: ``train/<stat>`` for each stat; ``adapt_gain/<X>`` = ``pre_adapt_<X> -
  query_<X>`` where the learner reports both (how much adapting on the support days lowered the
  loss on the query days of the meta-batch: positive means adaptation helps); and
  ``time/sec_per_iter`` (wall-clock seconds per iteration since the last row, sampling and the
  previous row's writes included).
- under ``[train] select_on = "val"``, a ``val_score`` row (and ``val/score`` scalar) at each
  iteration scored on the validation tasks (:mod:`market_metarl.meta.selection`).

Event files go to ``DIR/<run dir name>/<learner>/`` (``tensorboard = "DIR"``) or to the run
directory's ``tb/<learner>/`` (``tensorboard = true``). A fresh run hides the steps of an earlier
run logged under the same name, and a resumed one the steps past its checkpoint (TensorBoard's
purge), so each curve is one run's. The writers are flushed after each row and closed when
training ends, fails or is interrupted. Logging reads no random number generator.
``tensorboard`` is imported here only, and only when asked for.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from market_metarl.meta.experiment import TrainConfig
from market_metarl.meta.rundir import TENSORBOARD_DIR, append_metrics
from market_metarl.types import ConfigError

PRE_ADAPT = "pre_adapt_"
"""Prefix of a step stat measured before adapting; ``query_<X>`` is the same loss after."""


def summary_writer_class() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line hint when it cannot be imported.

    Raises:
        ConfigError: The ``tensorboard`` package is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "TensorBoard logging needs the tensorboard package: pip install "
            "'market_metarl[tensorboard]' (or pip install tensorboard), or drop --tensorboard "
            "and [train] tensorboard"
        ) from None
    return SummaryWriter


def tensorboard_dir(run_dir: Path, setting: bool | str) -> Path | None:
    """Where a run's event files go under ``[train] tensorboard = setting`` (None: nowhere)."""
    if setting is False:
        return None
    if setting is True:
        return Path(run_dir) / TENSORBOARD_DIR
    return Path(setting) / Path(run_dir).resolve().name


def adaptation_gains(means: dict[str, float]) -> dict[str, float]:
    """``{X: pre_adapt_<X> - query_<X>}`` for every loss ``X`` the stats hold before and after."""
    gains = {}
    for key, value in means.items():
        loss = key.removeprefix(PRE_ADAPT)
        if loss != key and f"query_{loss}" in means:
            gains[loss] = value - means[f"query_{loss}"]
    return gains


class TrainLog:
    """The trainer's log: one per run, one learner at a time (:meth:`begin`), closed at the end.

    Use it as a context manager so the TensorBoard writer is closed however training ends.
    """

    def __init__(self, run_dir: Path, log_every: int, tensorboard: bool | str = False) -> None:
        """A log of the run in ``run_dir``; nothing is written before :meth:`begin`.

        Args:
            run_dir: The run directory (``metrics.csv`` is written there).
            log_every: Iterations between rows (``[train] log_every``).
            tensorboard: ``[train] tensorboard``: False, True or a directory.

        Raises:
            ConfigError: TensorBoard asked for and not installed.
        """
        self.metrics_path = Path(run_dir) / "metrics.csv"
        self.log_every = log_every
        self.tensorboard = tensorboard_dir(run_dir, tensorboard)
        self._writer_class = summary_writer_class() if self.tensorboard is not None else None
        self._writer: Any = None
        self._learner = ""
        self._rows: list[dict[str, float]] = []
        self._start = 0.0

    @classmethod
    def of(cls, run_dir: Path, train: TrainConfig) -> TrainLog:
        """The log a run with ``[train]`` settings ``train`` writes into ``run_dir``."""
        return cls(run_dir, train.log_every, train.tensorboard)

    def begin(self, learner: str, done: int) -> None:
        """Log ``learner`` from iteration ``done`` (0 for a new run, its checkpoint's on resume).

        Event steps after ``done`` left by an earlier run of this name are purged from view.
        """
        self.close()
        self._learner, self._rows, self._start = learner, [], time.perf_counter()
        if self._writer_class is not None and self.tensorboard is not None:
            log_dir = self.tensorboard / learner
            self._writer = self._writer_class(str(log_dir), purge_step=done + 1)

    def record(
        self, iteration: int, stats: dict[str, float], ends_interval: bool
    ) -> dict[str, float] | None:
        """Add the stats of iteration ``iteration`` (counted from 1); write a row if one is due.

        Args:
            iteration: Iterations done, this one included.
            stats: What the learner's ``step`` returned.
            ends_interval: A checkpoint follows (or the learner's last iteration): a row is due.

        Returns:
            The row written (each stat's mean since the last row), or None when none was due.
        """
        self._rows.append(stats)
        if iteration % self.log_every and not ends_interval:
            return None
        means = {k: float(np.mean([r[k] for r in self._rows])) for k in self._rows[0]}
        seconds = (time.perf_counter() - self._start) / len(self._rows)
        append_metrics(self.metrics_path, self._learner, iteration, means)
        if self._writer is not None:
            self._scalars(iteration, means, seconds)
        self._rows, self._start = [], time.perf_counter()
        return means

    def validation(self, iteration: int, score: float) -> None:
        """Log the validation score of iteration ``iteration`` (``[train] select_on = "val"``).

        A ``val_score`` row in ``metrics.csv`` (deterministic, so the file stays reproducible)
        and the TensorBoard scalar ``val/score``.
        """
        append_metrics(self.metrics_path, self._learner, iteration, {"val_score": score})
        if self._writer is not None:
            self._writer.add_scalar("val/score", score, iteration)
            self._writer.flush()

    def _scalars(self, iteration: int, means: dict[str, float], seconds: float) -> None:
        """One row's TensorBoard scalars, flushed so a watching TensorBoard sees them now."""
        for key, value in means.items():
            self._writer.add_scalar(f"train/{key}", value, iteration)
        for key, value in adaptation_gains(means).items():
            self._writer.add_scalar(f"adapt_gain/{key}", value, iteration)
        self._writer.add_scalar("time/sec_per_iter", seconds, iteration)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the TensorBoard writer of the current learner (if any)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __enter__(self) -> TrainLog:
        """The log itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the writer, on success, error or Ctrl-C alike."""
        self.close()
