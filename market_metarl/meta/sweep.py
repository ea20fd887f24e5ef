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
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from market_metarl.config import check_sections
from market_metarl.fileio import atomic_write_json, atomic_write_text
from market_metarl.meta.evaluation import bootstrap_mean, evaluate_adaptation
from market_metarl.meta.experiment import Experiment, build_pool
from market_metarl.meta.registry import check_name
from market_metarl.parallel import LOCAL, Backend
from market_metarl.types import ConfigError, MarketMetaRLError, RunError

SWEEP_FORMAT = 1
SPLITS: tuple[str, ...] = ("auto", "val", "test")
Grid = list[tuple[str, list[Any]]]


def parse_grid(texts: Sequence[str]) -> Grid:
    """``["train.hidden=16,32", "train.maml.inner_lr=0.05,0.1"]`` -> ``[(key, values), ...]``.

    A key without a section is a ``[train]`` key; an algorithm's setting is
    ``train.<algo>.<name>``. Values are TOML scalars (``16``, ``0.05``,
    ``true``, ``"x"``); a bare word that is not one is taken as a string.
    """
    grid: Grid = []
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid {text!r} must look like key=v1,v2, e.g. train.hidden=16,32")
        if "." not in key:
            key = f"train.{key}"
        if key.count(".") != 1 and not (key.startswith("train.") and key.count(".") == 2):
            raise ConfigError(
                f"--grid {text!r}: the key must be section.name (train.hidden) or, for an "
                "algorithm's setting, train.<algo>.name (train.maml.inner_lr)"
            )
        if any(k == key for k, _ in grid):
            raise ConfigError(f"--grid names {key} twice; give all its values in one setting")
        values = [_scalar(v.strip()) for v in raw.split(",")]
        if any(v == "" for v in values):
            raise ConfigError(f"--grid {text!r} has an empty value")
        grid.append((key, values))
    return grid


def _scalar(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def combinations(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first setting varying slowest."""
    keys = [k for k, _ in grid]
    return [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*(v for _, v in grid))
    ]


def with_settings(cfg: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` with ``{"section.key": value}`` (or ``train.algo.key``) settings applied."""
    out = copy.deepcopy(cfg)
    for key, value in settings.items():
        *path, name = key.split(".")
        table = out
        for depth, part in enumerate(path):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"--grid {key}: [{where}] is not a table in the config")
        table[name] = value
    return out


@dataclass(frozen=True)
class SweepJob:
    """What every piece of a sweep reads."""

    config: dict[str, Any]
    algo: str
    split: Literal["val", "test"]


@dataclass(frozen=True)
class Piece:
    """One (combination, seed) of a sweep."""

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
    """SHA-256 (16 hex digits) of a trained learner's tensors, to compare runs bit for bit."""
    import torch

    from market_metarl.meta.rundir import checkpoint_path, load_checkpoint

    state = load_checkpoint(checkpoint_path(run_dir, learner), learner)["agent"]
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
class Row:
    """One combination's line of the sweep table."""

    combo: int
    settings: dict[str, Any]
    seeds: int
    tasks: int
    score: float
    ci_low: float
    ci_high: float
    zero_shot: float
    gain: float


def summarise(results: Sequence[dict[str, Any]], n_boot: int = 2000) -> list[Row]:
    """One row per combination, best score first (ties: lower combination number first)."""
    by_combo: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        by_combo.setdefault(int(r["combo"]), []).append(r)
    rows = []
    for combo, rs in sorted(by_combo.items()):
        rs = sorted(rs, key=lambda r: int(r["seed"]))
        post = np.array([r["post_sharpe"] for r in rs], dtype=float)
        pre = np.array([r["pre_sharpe"] for r in rs], dtype=float)
        lo, hi = bootstrap_mean(post, n_boot=n_boot, seed=0)
        rows.append(
            Row(
                combo,
                rs[0]["settings"],
                len(rs),
                post.shape[1],
                float(post.mean()),
                lo,
                hi,
                float(pre.mean()),
                float((post - pre).mean()),
            )
        )
    return sorted(rows, key=lambda r: (-r.score if math.isfinite(r.score) else math.inf, r.combo))


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
    splits = set()
    for settings in combos:  # every combination is checked before anything runs
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
    chosen = splits.pop()
    out = Path(out)
    seed_list = list(range(seed, seed + seeds))
    spec: dict[str, Any] = {
        "format": SWEEP_FORMAT,
        "algo": algo,
        "seeds": seed_list,
        "grid": [[k, v] for k, v in grid],
        "split": chosen,
        "config": hashlib.sha256(
            json.dumps(config, sort_keys=True, default=str).encode()
        ).hexdigest()[:16],
    }
    _open_sweep(out, spec)
    with _locked(out):
        runs = out.resolve() / "runs"  # absolute: Ray workers do not share the caller's cwd
        pieces = [
            Piece(c, settings, s, str(runs / f"combo{c:02d}" / f"seed{s}"))
            for c, settings in enumerate(combos)
            for s in seed_list
        ]
        done = {p.name: _read_result(out, p) for p in pieces if _result_path(out, p).is_file()}
        todo = [p for p in pieces if p.name not in done]
        from tqdm import tqdm

        job = SweepJob(config, algo, chosen)
        with tqdm(
            total=len(pieces), initial=len(done), desc="sweep", unit="run", disable=not progress
        ) as bar:
            for index, result in backend.imap(sweep_piece, todo, job):
                piece = todo[index]
                _write_json(_result_path(out, piece), result)
                done[piece.name] = result
                bar.set_postfix_str(f"{piece.name} score {np.mean(result['post_sharpe']):.3f}")
                bar.update(1)
                if on_result is not None:
                    on_result(result)
        results = [done[p.name] for p in pieces]
        rows = summarise(results)
        _write_table(out / "sweep.csv", rows, [k for k, _ in grid])
        return SweepResult(rows, out, chosen, len(todo), len(pieces) - len(todo), results)


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


FIGURES: tuple[str, ...] = ("score", "ci_low", "ci_high", "zero_shot", "gain")
"""The table's figures (``Row`` fields), after its settings, ``seeds`` and ``tasks`` columns."""


def _cells(row: Row, keys: Sequence[str], fmt: str) -> list[str]:
    figures = [format(getattr(row, f), fmt) for f in FIGURES]
    return [*(str(row.settings[k]) for k in keys), str(row.seeds), str(row.tasks), *figures]


def table_lines(rows: Sequence[Row], keys: Sequence[str]) -> list[str]:
    """The table as aligned text lines (header first)."""
    head = [*(k.split(".")[-1] for k in keys), "seeds", "tasks", *FIGURES]
    lines = [head, *(_cells(r, keys, ".3f") for r in rows)]
    widths = [max(len(x) for x in col) for col in zip(*lines, strict=True)]
    return ["  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)) for line in lines]


def _write_table(path: Path, rows: Sequence[Row], keys: Sequence[str]) -> None:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "combo", *keys, "seeds", "tasks", *FIGURES])
    for rank, r in enumerate(rows, 1):
        writer.writerow([str(rank), str(r.combo), *_cells(r, keys, ".6g")])
    atomic_write_text(path, buf.getvalue())
