"""The run directory: the one module that knows its files and writes them.

``runs/NAME/`` holds ``config.toml`` (the resolved config), ``run.json`` (algorithm, seed,
iterations done, observation shapes, data hashes, package versions), ``data_repairs.json`` (bad
rows dropped from the data under ``[data] repair = "drop"``), ``tasks.json`` (the tasks, read
when the run is opened: :mod:`market_metarl.meta.runtasks`), ``metrics.csv`` (one row per
logged iteration, learner and metric: :mod:`market_metarl.meta.trainlog` says which),
``checkpoints/<learner>.pt`` and, under ``[train] tensorboard = true``, ``tb/<learner>/``
(TensorBoard event files). A checkpoint has two
parts: ``agent`` (what an agent is rebuilt from: network parameters, normalisers, learned step
sizes) and ``training`` (optimiser and RNG state, read only to resume), so a backtest or a paper
account loads agents without optimisers. Every file but the appended ``metrics.csv`` and the event
files is written atomically (:mod:`market_metarl.fileio`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from market_metarl.fileio import atomic_write, atomic_write_json, atomic_write_text
from market_metarl.meta.contracts import Learner
from market_metarl.meta.episodes import TaskPool
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.rundigest import config_digest, resolved_config
from market_metarl.meta.runtasks import TASKS_FILE, check_resumed_tasks, write_tasks
from market_metarl.types import RunError

DATA_REPAIRS = "data_repairs.json"
"""Beside ``run.json``: the bad rows dropped from the run's data (source, date, column, value,
reason), ``[]`` when none; see :mod:`market_metarl.data.repair`."""
RUN_FORMAT = 2
"""Version of the run directory's layout (2: checkpoints split into agent and training parts)."""
METRICS_HEADER = ["learner", "iteration", "metric", "value"]


@dataclass(frozen=True)
class Shapes:
    """What a network needs to know of the observations: sizes and where the position sits."""

    obs_dim: int
    n_assets: int
    position: tuple[int, int]

    @classmethod
    def of(cls, pool: TaskPool) -> Shapes:
        """The shapes of a task pool's observations."""
        return cls(pool.obs_dim, pool.n_assets, (pool.position.start, pool.position.stop))

    def to_json(self) -> dict[str, Any]:
        """As recorded in ``run.json``."""
        return {"obs_dim": self.obs_dim, "n_assets": self.n_assets, "position": list(self.position)}


def checkpoint_path(run_dir: Path, learner: str) -> Path:
    """Where learner ``learner``'s checkpoint lives (the one place that builds this path)."""
    return Path(run_dir) / "checkpoints" / f"{learner}.pt"


def learner_names(algo: str, with_pooled: bool) -> list[str]:
    """The learners a run of ``algo`` trains, in training order (its pooled twin second)."""
    return [algo, "pooled"] if with_pooled and algo != "pooled" else [algo]


def open_run(
    run_dir: Path, exp: Experiment, algo: str, learners: Sequence[str], seed: int, resume: bool
) -> dict[str, Any]:
    """The state of ``run_dir`` to train into: a new run's (files written), or the run to resume.

    Raises:
        RunError: ``run_dir`` holds a run (without ``resume``), or a different run (with it).
    """
    meta_path = run_dir / "run.json"
    if resume:
        state = read_run_json(run_dir)
        if state["algo"] != algo or state["seed"] != seed:
            raise RunError(
                f"{run_dir} was trained with --algo {state['algo']} --seed {state['seed']}; "
                f"resume with those, or train into a new --out"
            )
        if state["config"] != config_digest(exp, learners):
            raise RunError(f"{run_dir} was trained with another config; resume needs the same one")
        check_resumed_tasks(run_dir, state, resolved_config(exp, learners), exp.tasks.tasks)
        write_run_json(run_dir, state)  # a run of an earlier version gains its tasks' digest
        return state
    if meta_path.exists():
        raise RunError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose a new --out"
        )
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    cfg = resolved_config(exp, learners)
    write_toml(run_dir / "config.toml", cfg)
    hashes, repairs = _data_record(exp)
    atomic_write_json(run_dir / DATA_REPAIRS, repairs)
    state = {
        "format": RUN_FORMAT,
        "algo": algo,
        "seed": seed,
        "iterations": {},
        "config": config_digest(exp, learners),
        "tasks": write_tasks(run_dir, cfg, exp.tasks.tasks),
        "data_hashes": hashes,
        "versions": _versions(),
    }
    write_run_json(run_dir, state)
    return state


RUN_FILES = ("config.toml", "run.json", DATA_REPAIRS, TASKS_FILE, "metrics.csv")
"""The files of a run directory besides ``checkpoints/`` and ``tb/``."""
TENSORBOARD_DIR = "tb"
"""The run directory's folder of TensorBoard event files (``[train] tensorboard = true``)."""


@contextmanager
def discard_if_unfinished(run_dir: Path, fresh: bool) -> Iterator[None]:
    """Remove a new run's files when training fails (or is interrupted) before a checkpoint.

    A failed ``train`` leaves no half-written run behind: the folder is removed if this call
    created it, else only the run's own files are. Once a checkpoint is written the run is kept,
    since ``--resume`` continues it; a resumed run (``fresh=False``) and a folder that already
    held a run are never touched.
    """
    created = not run_dir.exists()
    held_run = (run_dir / "run.json").exists()
    try:
        yield
    except BaseException:
        checkpoints = run_dir / "checkpoints"
        if fresh and not held_run and not any(checkpoints.glob("*.pt")):
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                for name in RUN_FILES:
                    (run_dir / name).unlink(missing_ok=True)
                shutil.rmtree(checkpoints, ignore_errors=True)
                shutil.rmtree(run_dir / TENSORBOARD_DIR, ignore_errors=True)
        raise


def write_run_json(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``run.json`` atomically."""
    atomic_write_json(Path(run_dir) / "run.json", state)


def _data_record(exp: Experiment) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Each source's data hash, and every bad row a repair policy dropped from the sources."""
    from market_metarl.data.sources import load_bars_with_report

    hashes, repairs = {}, []
    for source in sorted({t.source for t in exp.tasks}):
        bars, report = load_bars_with_report(source)
        dates = bars.index.to_numpy().astype("datetime64[D]").astype(np.int64)
        digest = hashlib.sha256(bars.to_numpy().tobytes() + dates.tobytes())
        hashes[source] = digest.hexdigest()
        repairs += [r.to_json() for r in report.repairs]
    return hashes, repairs


def _versions() -> dict[str, str]:
    import gymnasium
    import pandas

    from market_metarl._version import __version__

    return {
        "market_metarl": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
    }


def write_toml(path: Path, table: dict[str, Any]) -> None:
    """Write a two-level config table (sections, and ``[section.sub]`` tables) as TOML."""
    lines: list[str] = []
    for section, values in table.items():
        lines += _toml_section(section, values)
    atomic_write_text(path, "\n".join(lines))


def _toml_section(name: str, values: dict[str, Any]) -> list[str]:
    subtables = {k: v for k, v in values.items() if isinstance(v, dict) and "." not in name}
    lines = [f"[{name}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if k not in subtables]
    lines.append("")
    for key, sub in subtables.items():
        lines += _toml_section(f"{name}.{key}", sub)
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json``; a missing or foreign one raises :class:`RunError`."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise RunError(
            f"{run_dir} is not a run directory (no run.json); train one with `market-metarl train`"
        )
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is corrupt ({exc}); retrain into a new --out") from None
    if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
        raise RunError(
            f"{path} is not a market_metarl run of this version (format {RUN_FORMAT} expected); "
            "retrain it with this version"
        )
    return state


def append_metrics(path: Path, learner: str, iteration: int, metrics: dict[str, float]) -> None:
    """Append one row of ``learner``'s metrics at ``iteration`` to ``metrics.csv``."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(METRICS_HEADER)
        for key, value in metrics.items():
            writer.writerow([learner, iteration, key, f"{value:.6g}"])


def trim_metrics(path: Path, learner: str, done: int) -> None:
    """Keep the well-formed rows of ``metrics.csv`` up to iteration ``done`` of ``learner``."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [METRICS_HEADER]
    for row in rows:
        if len(row) != 4 or not row[1].isdigit():
            continue  # the header, or a line cut short by a kill
        if row[0] == learner and int(row[1]) > done:
            continue
        keep.append(row)
    if keep != rows:

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as fh:
                csv.writer(fh).writerows(keep)

        atomic_write(path, write)


def final_metrics(path: Path) -> dict[str, dict[str, float]]:
    """Each learner's metrics at its last iteration in ``metrics.csv`` (learner -> name -> value)."""
    last: dict[str, tuple[int, dict[str, float]]] = {}
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            if len(row) != 4 or not row[1].isdigit():
                continue  # the header, or a line cut short by a kill
            learner, iteration = row[0], int(row[1])
            if learner not in last or iteration > last[learner][0]:
                last[learner] = (iteration, {})
            if iteration == last[learner][0]:
                last[learner][1][row[2]] = float(row[3])
    return {learner: metrics for learner, (_, metrics) in last.items()}


def save_checkpoint(
    path: Path,
    learner: Learner,
    rng: np.random.Generator,
    iteration: int,
    selected: dict[str, Any] | None = None,
) -> None:
    """Write ``learner``'s checkpoint (agent part, training part, the sampling RNG) atomically.

    ``selected`` (``[train] select_on = "val"``: the best weights so far, their iteration and
    validation score, :mod:`market_metarl.meta.selection`) is stored beside them; an agent is then
    rebuilt from it (:func:`kept`), and ``--resume`` continues from the latest weights.
    """
    payload = {
        "format": RUN_FORMAT,
        "learner": learner.name,
        "iteration": iteration,
        "agent": learner.agent_state(),
        "training": learner.training_state(),
        "rng": json.dumps(rng.bit_generator.state),
    }
    if selected is not None:
        payload["selected"] = selected
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, learner: str | None = None) -> dict[str, Any]:
    """A checkpoint's payload, loaded with ``weights_only=True``; clear errors when it is not ours.

    Raises:
        RunError: Missing, corrupt or foreign file, or (with ``learner``) another learner's.
    """
    if not path.is_file():
        raise RunError(
            f"checkpoint {path} is missing; the run did not finish (resume it with --resume)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise RunError(
            f"checkpoint {path} is corrupt or not a market_metarl checkpoint ({type(exc).__name__})"
        ) from None
    if (
        not isinstance(payload, dict)
        or payload.get("format") != RUN_FORMAT
        or "agent" not in payload
    ):
        raise RunError(
            f"checkpoint {path} is not a market_metarl checkpoint of this version; retrain the run"
        )
    if learner is not None and payload.get("learner") != learner:
        raise RunError(f"checkpoint {path} holds a {payload.get('learner')} learner, not {learner}")
    return payload


def kept(payload: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's payload with the weights the run keeps as its ``agent`` part.

    The weights selected on validation when the run selected (``[train] select_on = "val"``),
    else the latest ones.
    """
    if "selected" not in payload:
        return payload
    return {**payload, "agent": payload["selected"]["agent"]}


def load_agent_part(learner: Learner, payload: dict[str, Any], where: Path) -> None:
    """Load a checkpoint's agent part into ``learner``.

    Raises:
        RunError: The tensors do not fit the config's networks.
    """
    try:
        learner.load_agent_state(payload["agent"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise RunError(f"checkpoint {where} does not fit this config's networks ({exc})") from None


def restore(path: Path, learner: Learner, rng: np.random.Generator) -> int:
    """Restore ``learner`` (both parts) and ``rng`` from ``path``; the iterations it holds."""
    payload = load_checkpoint(path, learner.name)
    load_agent_part(learner, payload, path)
    try:
        learner.load_training_state(payload["training"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise RunError(f"checkpoint {path} cannot resume this learner ({exc})") from None
    rng.bit_generator.state = json.loads(payload["rng"])
    return int(payload["iteration"])


def run_shapes(run_dir: Path) -> Shapes:
    """Observation shapes recorded in a run's ``run.json``."""
    shapes = read_run_json(run_dir).get("shapes")
    if not shapes:
        raise RunError(f"{run_dir} has no trained learner yet; train (or resume) it first")
    return Shapes(int(shapes["obs_dim"]), int(shapes["n_assets"]), tuple(shapes["position"]))
