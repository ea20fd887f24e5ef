"""Sweeps: train and score every combination of settings x seeds, on any backend, resumable.

A sweep is a base config, one algorithm, ``seeds`` seeds and a grid (``train.hidden=16,32``...).
Each (combination, seed) is an independent piece (:func:`sweep_piece`): it meta-trains into its
own run directory with the trainer, then adapts the trained agent on the first K days of every
scoring task and trades the next H (:func:`~market_metarl.meta.evaluation.evaluate_adaptation`).
The pieces run on an execution backend (:mod:`market_metarl.parallel`), so the same sweep runs in
this process or across a Ray cluster with the same numbers.

Score: the mean post-adaptation Sharpe ratio of the query days over tasks and seeds (the
backtest's Sharpe, :func:`market_metarl.stats.sharpe`), with the backtest's 95% bootstrap interval
(tasks resampled, one seed drawn per task). Tasks come from the ``val`` split when the
config has one, otherwise from ``test`` (then the best of several combinations on test is an
optimistic figure, and the table says so).

Output folder::

    sweep.json                   the definition; a rerun with another one is refused
    runs/comboNN/seedS/          each piece's trainer run (checkpoints, metrics.csv)
    results/comboNN-seedS.json   each finished piece, written as it finishes
    sweep.csv                    one row per combination, best first

Resuming: run the same command again. Finished pieces (``results/``) are skipped; a piece that
was interrupted resumes its training from its last checkpoint (the trainer's exact resume), so
the table is the one an uninterrupted sweep writes.

Parsing and applying the grid is :mod:`market_metarl.meta.sweep_grid`'s job, the table
:mod:`market_metarl.meta.sweep_table`'s; their public names are importable from here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from market_metarl.config import check_sections
from market_metarl.fileio import atomic_write_json
from market_metarl.meta.evaluation import evaluate_adaptation
from market_metarl.meta.experiment import Experiment, build_pool
from market_metarl.meta.registry import check_name
from market_metarl.meta.sweep_grid import Grid, combinations, parse_grid, with_settings
from market_metarl.meta.sweep_table import FIGURES, Row, summarise, table_lines, write_table
from market_metarl.parallel import LOCAL, Backend
from market_metarl.types import ConfigError, MarketMetaRLError, RunError

__all__ = [
    "FIGURES",
    "SPLITS",
    "SWEEP_FORMAT",
    "Grid",
    "Piece",
    "Row",
    "SweepJob",
    "SweepResult",
    "combinations",
    "params_digest",
    "parse_grid",
    "run_sweep",
    "scoring_split",
    "summarise",
    "sweep_piece",
    "table_lines",
    "with_settings",
]
"""Public names, the grid's and the table's included: callers import them all from here."""

SWEEP_FORMAT = 1
SPLITS: tuple[str, ...] = ("auto", "val", "test")


@dataclass(frozen=True)
class SweepJob:
    """What every piece of a sweep reads.

    Attributes:
        config: The base config (a parsed TOML file), before the piece's settings.
        algo: Algorithm trained (a registered name).
        split: Split whose tasks are scored.
    """

    config: dict[str, Any]
    algo: str
    split: Literal["val", "test"]


@dataclass(frozen=True)
class Piece:
    """One (combination, seed) of a sweep.

    Attributes:
        combo: The combination's number (grid order).
        settings: Its ``{"section.key": value}`` settings.
        seed: The root seed of its training run.
        run_dir: Its trainer run directory (absolute).
    """

    combo: int
    settings: dict[str, Any]
    seed: int
    run_dir: str

    @property
    def name(self) -> str:
        """``comboNN-seedS``: the piece's result file name and its label in messages."""
        return f"combo{self.combo:02d}-seed{self.seed}"


def scoring_split(exp: Experiment, split: str) -> Literal["val", "test"]:
    """The split a sweep scores on: ``val`` when ``auto`` and the config has val tasks."""
    if split == "auto":
        return "val" if exp.tasks.split("val") else "test"
    if split not in ("val", "test"):
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return "val" if split == "val" else "test"


def sweep_piece(job: SweepJob, piece: Piece) -> dict[str, Any]:
    """The piece function of a sweep: train one combination and seed, then score it.

    Trains into ``piece.run_dir`` (resuming a run found there), then evaluates the adapted agent
    on every task of the scoring split long enough for K + H days.
    """
    from market_metarl.meta.run import TrainedRun
    from market_metarl.meta.trainer import train

    exp = Experiment.from_config(with_settings(job.config, piece.settings))
    run_dir = Path(piece.run_dir)
    t0 = time.perf_counter()
    train(exp, job.algo, run_dir, seed=piece.seed, resume=(run_dir / "run.json").exists())
    seconds = time.perf_counter() - t0
    run = TrainedRun.open(run_dir)
    k, h = exp.train.adapt_days, exp.train.horizon
    pool = build_pool(exp, exp.tasks.split(job.split))
    eligible = [int(i) for i in pool.eligible(k - 1 + h)]
    if not eligible:
        raise ConfigError(
            f"{piece.name}: no {job.split} task has the {k - 1 + h} days adapt_days - 1 + horizon "
            "needs; lower them or raise regimes.min_task_days"
        )
    results = evaluate_adaptation(run.agent("adapted"), pool.episode(eligible, k - 1 + h), k, h)
    return {
        "combo": piece.combo,
        "settings": piece.settings,
        "seed": piece.seed,
        "split": job.split,
        "tasks": len(results),
        "post_sharpe": [r.post_sharpe for r in results],
        "pre_sharpe": [r.pre_sharpe for r in results],
        "params": params_digest(run_dir, job.algo),
        "train_seconds": seconds,
    }


def params_digest(run_dir: Path, learner: str) -> str:
    """SHA-256 (16 hex digits) of a trained learner's kept tensors, to compare runs bit for bit."""
    import torch

    from market_metarl.meta.rundir import checkpoint_path, kept, load_checkpoint

    state = kept(load_checkpoint(checkpoint_path(run_dir, learner), learner))["agent"]
    digest = hashlib.sha256()

    def walk(obj: Any, prefix: str) -> None:
        if isinstance(obj, torch.Tensor):
            digest.update(prefix.encode())
            digest.update(obj.detach().contiguous().numpy().tobytes())
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                walk(obj[key], f"{prefix}/{key}")

    walk(state, "")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did: the table, where it is, and how many pieces ran now."""

    rows: list[Row]
    out: Path
    split: str
    ran: int
    skipped: int
    results: list[dict[str, Any]]


def run_sweep(
    config: dict[str, Any],
    algo: str,
    seeds: int,
    grid: Grid,
    out: str | Path,
    backend: Backend = LOCAL,
    seed: int = 0,
    split: str = "auto",
    progress: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Train and score every combination x seed into ``out`` (see the module docstring).

    Args:
        config: The base config (a parsed TOML file).
        algo: Algorithm trained (a name in :mod:`market_metarl.meta.registry`).
        seeds: Seeds per combination: ``seed, seed + 1, ...`` (each is the ``--seed`` of a
            plain ``market-metarl train``, which reproduces that cell on its own).
        grid: Settings to vary (:func:`parse_grid`); empty: the base config alone.
        out: Output folder; an earlier run of the same sweep there is resumed.
        backend: Where the pieces run.
        seed: First seed.
        split: Tasks scored: ``val``, ``test`` or ``auto`` (val when the config has any).
        progress: Show a progress bar.
        on_result: Called with each piece's result as it is recorded.

    Raises:
        ConfigError: Unknown algorithm, split or setting, or a combination the config rejects.
        RunError: ``out`` holds another sweep (or something that is not a sweep).
    """
    check_name(algo)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    check_sections(config, "config")
    combos = combinations(grid)
    chosen = _check_combinations(config, combos, split)
    out = Path(out)
    seed_list = list(range(seed, seed + seeds))
    _open_sweep(out, _definition(config, algo, seed_list, grid, chosen))
    with _locked(out):
        pieces = _pieces(out, combos, seed_list)
        done = {p.name: _read_result(out, p) for p in pieces if _result_path(out, p).is_file()}
        todo = [p for p in pieces if p.name not in done]
        job = SweepJob(config, algo, chosen)
        _run_pieces(job, todo, out, done, backend, progress, on_result)
        results = [done[p.name] for p in pieces]
        rows = summarise(results)
        write_table(out / "sweep.csv", rows, [k for k, _ in grid])
        return SweepResult(rows, out, chosen, len(todo), len(pieces) - len(todo), results)


def _check_combinations(
    config: dict[str, Any], combos: Sequence[dict[str, Any]], split: str
) -> Literal["val", "test"]:
    """The split every combination scores on, each combination checked before anything runs."""
    splits: set[Literal["val", "test"]] = set()
    for settings in combos:
        where = " ".join(f"{k}={v}" for k, v in settings.items()) or "the base config"
        try:
            exp = Experiment.from_config(with_settings(config, settings))
        except MarketMetaRLError as exc:
            raise ConfigError(f"--grid {where}: {exc}") from None
        scored = scoring_split(exp, split)
        splits.add(scored)
        if not exp.tasks.split(scored):
            raise ConfigError(f"the config has no {scored} tasks to score on")
        window = exp.train.window_days
        if not len(build_pool(exp, exp.tasks.split(scored)).eligible(window)):
            raise ConfigError(
                f"--grid {where}: no {scored} task has the {window} days adapt_days - 1 + horizon "
                "needs; lower them or raise regimes.min_task_days"
            )
    if len(splits) != 1:
        raise ConfigError("the grid changes which split has tasks; pass --split val or test")
    return splits.pop()


def _definition(
    config: dict[str, Any], algo: str, seeds: list[int], grid: Grid, split: str
) -> dict[str, Any]:
    """``sweep.json``: what a rerun must match to resume (the base config by its digest)."""
    return {
        "format": SWEEP_FORMAT,
        "algo": algo,
        "seeds": seeds,
        "grid": [[k, v] for k, v in grid],
        "split": split,
        "config": hashlib.sha256(
            json.dumps(config, sort_keys=True, default=str).encode()
        ).hexdigest()[:16],
    }


def _pieces(out: Path, combos: Sequence[dict[str, Any]], seeds: Sequence[int]) -> list[Piece]:
    runs = out.resolve() / "runs"  # absolute: Ray workers do not share the caller's cwd
    return [
        Piece(c, settings, s, str(runs / f"combo{c:02d}" / f"seed{s}"))
        for c, settings in enumerate(combos)
        for s in seeds
    ]


def _run_pieces(
    job: SweepJob,
    todo: list[Piece],
    out: Path,
    done: dict[str, dict[str, Any]],
    backend: Backend,
    progress: bool,
    on_result: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Run the pieces not done yet; each result is written, then added to ``done``, as it comes."""
    from tqdm import tqdm

    with tqdm(
        total=len(done) + len(todo),
        initial=len(done),
        desc="sweep",
        unit="run",
        disable=not progress,
    ) as bar:
        for index, result in backend.imap(sweep_piece, todo, job):
            piece = todo[index]
            _write_json(_result_path(out, piece), result)
            done[piece.name] = result
            bar.set_postfix_str(f"{piece.name} score {np.mean(result['post_sharpe']):.3f}")
            bar.update(1)
            if on_result is not None:
                on_result(result)


def _open_sweep(out: Path, spec: dict[str, Any]) -> None:
    path = out / "sweep.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RunError(f"{path} is corrupt; choose a new --out") from None
        if old != spec:
            changed = sorted(k for k in spec if old.get(k) != spec[k])
            raise RunError(
                f"{out} holds another sweep (different {', '.join(changed)}); rerun its own "
                "command to resume it, or choose a new --out"
            )
        (out / "results").mkdir(exist_ok=True)
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"--out {out} exists and is not a sweep; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(path, spec)  # first: a folder with sweep.json is a sweep, whatever else it holds
    (out / "results").mkdir(exist_ok=True)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out/sweep.lock`` for the sweep's run.

    A second sweep in the same folder (which would train the same pieces into the same run
    directories) is refused.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with (out / "sweep.lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunError(
                f"another sweep is running in {out}; wait for it to finish or stop it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _result_path(out: Path, piece: Piece) -> Path:
    return out / "results" / f"{piece.name}.json"


def _read_result(out: Path, piece: Piece) -> dict[str, Any]:
    path = _result_path(out, piece)
    try:
        result: dict[str, Any] = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{path} is corrupt; delete it and rerun to redo that piece") from None
    return result


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write_json(path, obj, indent=1)
