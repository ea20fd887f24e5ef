"""A run's recorded tasks (``tasks.json``): what opening a run reads instead of rebuilding them.

Building a TaskSet reads every source, segments each one into regimes (refitting an HMM per
training symbol under ``method = "hmm"``) and cuts the tasks; on a universe of dozens of assets
that takes seconds. Training records the result beside ``config.toml``, so a backtest, a paper
step or a sweep's scoring opens the run with the very tasks it was trained on and reads bars only
when a split's markets are needed (:meth:`~market_metarl.meta.experiment.Experiment.markets`).

``tasks.json`` holds ``format`` (:data:`TASKS_FORMAT`), ``sections`` (a digest of the data-layer
settings the tasks were built from: ``[data]``, ``[regimes]``, ``[splits]`` and ``[costs]``,
resolved) and ``tasks``, one object per :class:`~market_metarl.types.TaskSpec` (every field;
dates ISO, ``params`` as ``[name, value]`` pairs), in the set's order. ``run.json`` records the
digest of the task list under ``tasks``, so an edited or foreign file is refused. The tasks are
used only while the run's data-layer settings are those they were built from: an override of
those sections, or a version whose defaults resolve them differently, rebuilds the tasks from the
data as before. So does a run written before this file existed.

The recorded tasks are the tasks at training time: when a source has changed since (a longer
download, say), the run keeps the tasks it was trained on. Delete ``tasks.json`` (and the
``tasks`` key of ``run.json``) to rebuild them from today's data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from market_metarl.config import build, read_toml, to_table
from market_metarl.data.tasks import DataSection, RegimeSection, SplitSection
from market_metarl.fileio import atomic_write_text
from market_metarl.meta.experiment import Experiment
from market_metarl.types import CostSpec, RunError, TaskSpec

TASKS_FILE = "tasks.json"
"""Beside ``config.toml``: the run's tasks, every split."""
TASKS_FORMAT = 1
"""Version of the layout of ``tasks.json``."""
DATA_SECTIONS: tuple[tuple[str, type], ...] = (
    ("data", DataSection),
    ("regimes", RegimeSection),
    ("splits", SplitSection),
    ("costs", CostSpec),
)
"""The config sections a run's tasks are a function of (with the data itself)."""


def task_record(task: TaskSpec) -> dict[str, Any]:
    """A task as it is written to ``tasks.json`` (JSON values; inverse of :func:`task_of`)."""
    return {
        "split": task.split,
        "source": task.source,
        "symbol": task.symbol,
        "start": task.start.isoformat(),
        "end": task.end.isoformat(),
        "label": task.label,
        "warmup_days": task.warmup_days,
        "params": [[name, value] for name, value in task.params],
        "costs": to_table(task.costs),
    }


def task_of(record: dict[str, Any]) -> TaskSpec:
    """The task a :func:`task_record` describes.

    Raises:
        KeyError, TypeError, ValueError: The record is not one (the caller names the file).
    """
    return TaskSpec(
        source=str(record["source"]),
        symbol=str(record["symbol"]),
        start=dt.date.fromisoformat(record["start"]),
        end=dt.date.fromisoformat(record["end"]),
        label=str(record["label"]),
        split=record["split"],
        costs=CostSpec(**record["costs"]),
        warmup_days=int(record["warmup_days"]),
        params=tuple((str(name), float(value)) for name, value in record["params"]),
    )


def tasks_digest(tasks: Sequence[TaskSpec]) -> str:
    """A short digest of a task list (order and every field), as ``run.json`` records it."""
    text = json.dumps([task_record(t) for t in tasks], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sections_digest(cfg: dict[str, Any]) -> str:
    """A short digest of a config's data-layer sections, resolved (defaults filled in).

    Raises:
        ConfigError: A bad data-layer section.
    """
    table = {name: to_table(build(kind, cfg.get(name), name)) for name, kind in DATA_SECTIONS}
    text = json.dumps(table, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_tasks(run_dir: Path, cfg: dict[str, Any], tasks: Sequence[TaskSpec]) -> str:
    """Write ``tasks.json`` atomically for the tasks built from ``cfg``; their digest.

    Args:
        run_dir: The run directory.
        cfg: The resolved config the tasks were built from (``config.toml``'s table).
        tasks: The task set's tasks, in its order.
    """
    lines = ",\n".join(f"    {json.dumps(task_record(t))}" for t in tasks)
    head = f'{{\n  "format": {TASKS_FORMAT},\n  "sections": "{sections_digest(cfg)}",\n'
    atomic_write_text(Path(run_dir) / TASKS_FILE, f'{head}  "tasks": [\n{lines}\n  ]\n}}\n')
    return tasks_digest(tasks)


def recorded_tasks(
    run_dir: Path, state: dict[str, Any], cfg: dict[str, Any]
) -> tuple[TaskSpec, ...] | None:
    """The tasks the run recorded, or None when they must be rebuilt from the data.

    None when the run records none (written before ``tasks.json`` existed) or when ``cfg``'s
    data-layer sections are not those the tasks were built from (overridden, or resolved
    differently by this version).

    Args:
        run_dir: The run directory.
        state: Its ``run.json``.
        cfg: The config the run is opened with (``config.toml`` and any overrides).

    Raises:
        RunError: ``tasks.json`` is missing although ``run.json`` records it, corrupt, or not the
            list ``run.json`` records.
    """
    digest = state.get("tasks")
    if digest is None:
        return None
    path = Path(run_dir) / TASKS_FILE
    fix = f"delete the `tasks` key of {Path(run_dir) / 'run.json'} to rebuild them from the data"
    if not path.is_file():
        raise RunError(f"{path} is missing but run.json records the run's tasks; {fix}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc["format"] != TASKS_FORMAT:
            raise ValueError(f"format {doc['format']}, not {TASKS_FORMAT}")
        tasks = tuple(task_of(r) for r in doc["tasks"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise RunError(
            f"{path} is corrupt or not a market_metarl task list ({exc}); {fix}"
        ) from None
    if tasks_digest(tasks) != digest:
        raise RunError(f"{path} does not hold the tasks run.json records (edited?); {fix}")
    return tasks if doc.get("sections") == sections_digest(cfg) else None


def check_resumed_tasks(
    run_dir: Path, state: dict[str, Any], cfg: dict[str, Any], tasks: Sequence[TaskSpec]
) -> None:
    """Refuse to resume a run on other tasks than it recorded (its data changed since).

    A run written before ``tasks.json`` existed has its tasks recorded now (``state`` gains
    their digest; the caller writes ``run.json``).

    Args:
        run_dir: The run directory.
        state: Its ``run.json``.
        cfg: The resolved config of the resumed experiment.
        tasks: The resumed experiment's tasks.

    Raises:
        RunError: The tasks differ from those ``run.json`` records.
    """
    recorded = state.get("tasks")
    if recorded is None:
        state["tasks"] = write_tasks(run_dir, cfg, tasks)
    elif recorded != tasks_digest(tasks):
        raise RunError(
            f"{run_dir} was trained on other tasks than this config gives now (the data changed "
            "since it started); resume with the same data, or train into a new --out"
        )


def experiment_of_run(
    run_dir: Path, state: dict[str, Any], overrides: dict[str, Any] | None = None
) -> Experiment:
    """A run's experiment: its saved ``config.toml`` (with ``overrides``) and recorded tasks.

    The tasks are rebuilt from the data only when :func:`recorded_tasks` gives none.

    Args:
        run_dir: The run directory.
        state: Its ``run.json``.
        overrides: Tables replacing the config's (``{"backtest": {...}}``).
    """
    cfg = read_toml(Path(run_dir) / "config.toml")
    cfg.update(overrides or {})
    return Experiment.from_config(cfg, recorded_tasks(run_dir, state, cfg))
