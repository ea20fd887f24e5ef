"""The trainer: meta-train one algorithm (and the pooled baseline) into a run directory.

Run directory (``runs/NAME/``): ``config.toml`` (the resolved config), ``run.json`` (algorithm,
seed, iterations done, data hashes, package versions, shapes), ``metrics.csv`` (one row per
checkpoint interval and learner) and ``checkpoints/<learner>.pt`` (network, optimiser and RNG
state, written atomically every ``checkpoint_every`` iterations). ``--resume`` continues from the
last checkpoint and ends with the same parameters as an uninterrupted run.

The loop reads top to bottom: # setup, then per learner # rollout / # optimize / # checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from market_metarl.config import to_table
from market_metarl.meta.episodes import TaskPool
from market_metarl.meta.experiment import ALGOS, Experiment, TrainConfig
from market_metarl.meta.learners import MAMLLearner, PooledLearner, RL2Learner, Windows
from market_metarl.meta.model_based import ModelBasedLearner, build_model_based
from market_metarl.meta.pearl import PearlLearner, build_pearl
from market_metarl.meta.policies import GRUPolicy, MLPPolicy
from market_metarl.meta.ppo import GRUActorCritic, RL2PPOLearner
from market_metarl.parallel import LOCAL, Backend
from market_metarl.seeding import child_seed
from market_metarl.types import ConfigError, RunError

Learner = (
    MAMLLearner | RL2Learner | RL2PPOLearner | PooledLearner | ModelBasedLearner | PearlLearner
)
RUN_FORMAT = 1
METRICS_HEADER = ["learner", "iteration", "metric", "value"]


@dataclass
class TrainEvent:
    """What the trainer reports after each checkpoint interval (no peeking at ``locals()``)."""

    learner: str
    iteration: int
    total: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Shapes:
    """What a network needs to know of the observations: sizes and where the position sits."""

    obs_dim: int
    n_assets: int
    position: tuple[int, int]

    @classmethod
    def of(cls, pool: TaskPool) -> Shapes:
        return cls(pool.obs_dim, pool.n_assets, (pool.position.start, pool.position.stop))

    @property
    def position_slice(self) -> slice:
        return slice(*self.position)


def build_learner(
    name: str,
    exp: Experiment,
    shapes: Shapes,
    seed: int,
    observations: torch.Tensor | None = None,
    backend: Backend = LOCAL,
) -> Learner:
    """A fresh learner, its network initialised from ``seed`` (global RNG left untouched).

    ``observations`` (meta-training tasks only) fit the input normaliser; a learner that will load
    a checkpoint does not need them. ``backend`` runs the tasks of MAML's meta-batches (the other
    learners are vectorised over their batch).
    """
    cfg, windows = exp.train, Windows(exp.train.adapt_days, exp.train.horizon)
    if name in ("model_based", "pearl"):
        build = build_model_based if name == "model_based" else build_pearl
        return build(
            cfg, exp.env, shapes.obs_dim, shapes.n_assets, shapes.position_slice, seed, observations
        )
    policy: MLPPolicy | GRUPolicy
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "rl2" and cfg.rl2_trainer == "ppo":
            policy = GRUActorCritic(
                shapes.obs_dim,
                shapes.n_assets,
                cfg.policy_spec(exp.env, True),
                cfg.ppo_init_log_std,
            )
        elif name == "rl2":
            policy = GRUPolicy(shapes.obs_dim, shapes.n_assets, cfg.policy_spec(exp.env, True))
        else:
            policy = MLPPolicy(shapes.obs_dim, shapes.n_assets, cfg.policy_spec(exp.env))
    if observations is not None:
        policy.norm.fit(observations, keep=shapes.position_slice)
    if isinstance(policy, GRUActorCritic):
        return RL2PPOLearner(
            policy,
            windows,
            lr=cfg.ppo_lr,
            epochs=cfg.ppo_epochs,
            minibatches=cfg.ppo_minibatches,
            clip=cfg.ppo_clip,
            gamma=cfg.ppo_gamma,
            lam=cfg.ppo_lambda,
            entropy_coef=cfg.ppo_entropy,
            value_coef=cfg.ppo_value_coef,
            grad_clip=cfg.grad_clip,
            seed=child_seed(seed, 1),
        )
    if isinstance(policy, GRUPolicy):
        return RL2Learner(policy, windows, lr=cfg.outer_lr, grad_clip=cfg.grad_clip)
    if not cfg.position_input:
        policy.mask_inputs(shapes.position_slice)
    if name == "maml":
        return MAMLLearner(
            policy,
            windows,
            inner_steps=cfg.inner_steps,
            inner_lr=cfg.inner_lr,
            learn_inner_lr=cfg.learn_inner_lr,
            first_order=cfg.first_order,
            outer_lr=cfg.outer_lr,
            estimator=cfg.estimator,
            grad_clip=cfg.grad_clip,
            seed=child_seed(seed, 1),
            backend=backend,
        )
    return PooledLearner(
        policy,
        windows,
        lr=cfg.outer_lr,
        estimator=cfg.estimator,
        grad_clip=cfg.grad_clip,
        seed=child_seed(seed, 1),
    )


def _batch_size(name: str, cfg: TrainConfig) -> int:
    return {
        "maml": cfg.meta_batch,
        "rl2": cfg.rl2_batch,
        "pooled": cfg.pooled_batch,
        "model_based": cfg.mb_batch,
        "pearl": cfg.pearl_batch,
    }[name]


def _iterations(name: str, cfg: TrainConfig) -> int:
    override = {
        "pooled": cfg.pooled_iterations,
        "rl2": cfg.rl2_iterations,
        "model_based": cfg.mb_iterations,
        "pearl": cfg.pearl_iterations,
    }.get(name, 0)
    return override or cfg.iterations


def train(
    exp: Experiment,
    algo: str,
    out: str | Path,
    seed: int = 0,
    resume: bool = False,
    on_event: Callable[[TrainEvent], None] | None = None,
    backend: Backend = LOCAL,
) -> Path:
    """Meta-train ``algo`` and the pooled baseline on the experiment's train tasks into ``out``.

    ``backend`` (:mod:`market_metarl.parallel`) runs the per-task pieces of each meta-batch; the
    parameters and metrics are the same with every backend.

    Raises:
        ConfigError: Unknown algorithm.
        RunError: ``out`` holds a different run (or one that cannot be resumed).
    """
    # setup
    if algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {algo!r}; valid: {', '.join(ALGOS)}")
    run_dir = Path(out)
    learners = [algo] if algo == "pooled" else [algo, "pooled"]
    state = _open_run(run_dir, exp, algo, seed, resume)
    pool = exp.pool("train")
    shapes = Shapes.of(pool)
    state["shapes"] = {
        "obs_dim": shapes.obs_dim,
        "n_assets": shapes.n_assets,
        "position": list(shapes.position),
    }
    observations = pool.all_observations()
    for index, name in enumerate(learners):
        total = _iterations(name, exp.train)
        learner = build_learner(
            name, exp, shapes, child_seed(seed, index, 0), observations, backend
        )
        rng = np.random.default_rng(child_seed(seed, index, 1))
        done = int(state["iterations"].get(name, 0))
        checkpoint = run_dir / "checkpoints" / f"{name}.pt"
        if done and not checkpoint.is_file():
            raise RunError(f"checkpoint {checkpoint} is missing; train into a new --out")
        if resume:
            # the checkpoint is the truth (none yet: iteration 0): a run killed between writing
            # metrics, the checkpoint and run.json resumes from the checkpoint, and metrics rows
            # past it (or cut short) are dropped, so nothing is repeated or duplicated
            done = _load_checkpoint(checkpoint, learner, rng, done) if checkpoint.is_file() else 0
            _trim_metrics(run_dir / "metrics.csv", name, done)
        batch = _batch_size(name, exp.train)
        rows: list[dict[str, float]] = []
        for it in range(done, total):
            # rollout: sample task windows (support + query days)
            episode = pool.sample(batch, exp.train.window_days, rng)
            # optimize
            rows.append(learner.step(episode))
            # checkpoint
            if (it + 1) % exp.train.checkpoint_every == 0 or it + 1 == total:
                metrics = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                # metrics, checkpoint, run.json: a kill anywhere in between resumes exactly
                _append_metrics(run_dir / "metrics.csv", name, it + 1, metrics)
                _save_checkpoint(checkpoint, learner, rng, it + 1)
                state["iterations"][name] = it + 1
                _write_json(run_dir / "run.json", state)
                rows = []
                if on_event is not None:
                    on_event(TrainEvent(name, it + 1, total, metrics))
    return run_dir


def _data_hashes(exp: Experiment) -> dict[str, str]:
    from market_metarl.data.sources import load_bars

    hashes = {}
    for source in sorted({t.source for t in exp.tasks}):
        bars = load_bars(source)
        dates = bars.index.to_numpy().astype("datetime64[D]").astype(np.int64)
        digest = hashlib.sha256(bars.to_numpy().tobytes() + dates.tobytes())
        hashes[source] = digest.hexdigest()
    return hashes


def _versions() -> dict[str, str]:
    import gymnasium
    import pandas

    from market_metarl import __version__

    return {
        "market_metarl": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
    }


def _open_run(run_dir: Path, exp: Experiment, algo: str, seed: int, resume: bool) -> dict[str, Any]:
    meta_path = run_dir / "run.json"
    if resume:
        state = read_run_json(run_dir)
        if state["algo"] != algo or state["seed"] != seed:
            raise RunError(
                f"{run_dir} was trained with --algo {state['algo']} --seed {state['seed']}; "
                f"resume with those, or train into a new --out"
            )
        if state["config"] != _config_digest(exp):
            raise RunError(f"{run_dir} was trained with another config; resume needs the same one")
        return state
    if meta_path.exists():
        raise RunError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose a new --out"
        )
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    _write_toml(run_dir / "config.toml", _resolved_config(exp))
    state = {
        "format": RUN_FORMAT,
        "algo": algo,
        "seed": seed,
        "iterations": {},
        "config": _config_digest(exp),
        "data_hashes": _data_hashes(exp),
        "versions": _versions(),
    }
    _write_json(meta_path, state)
    return state


def _resolved_config(exp: Experiment) -> dict[str, Any]:
    env = to_table(exp.env)
    features = env.pop("features")
    cfg = {
        "data": to_table(exp.tasks.data),
        "regimes": to_table(exp.tasks.regimes),
        "splits": to_table(exp.tasks.splits),
        "costs": to_table(exp.tasks.costs),
        "features": features,
        "env": env,
        "train": to_table(exp.train),
    }
    for section in ("backtest", "paper"):
        if section in exp.config:
            cfg[section] = exp.config[section]
    return cfg


def _config_digest(exp: Experiment) -> str:
    text = json.dumps(_resolved_config(exp), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_toml(path: Path, table: dict[str, Any]) -> None:
    lines: list[str] = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    _write_text(path, "\n".join(lines))


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


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    _write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


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
        raise RunError(f"{path} is not a market_metarl run (format {RUN_FORMAT} expected)")
    return state


def _append_metrics(path: Path, learner: str, iteration: int, metrics: dict[str, float]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(METRICS_HEADER)
        for key, value in metrics.items():
            writer.writerow([learner, iteration, key, f"{value:.6g}"])


def _trim_metrics(path: Path, learner: str, done: int) -> None:
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
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as fh:
            csv.writer(fh).writerows(keep)
        os.replace(tmp, path)


def _save_checkpoint(
    path: Path, learner: Learner, rng: np.random.Generator, iteration: int
) -> None:
    payload = {
        "format": RUN_FORMAT,
        "learner": learner.name,
        "iteration": iteration,
        "state": learner.state_dict(),
        "rng": json.dumps(rng.bit_generator.state),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's payload, loaded with ``weights_only=True``; clear errors when it is not ours."""
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
        or "state" not in payload
    ):
        raise RunError(f"checkpoint {path} is not a market_metarl checkpoint")
    return payload


def _load_checkpoint(path: Path, learner: Learner, rng: np.random.Generator, recorded: int) -> int:
    """Restore ``learner`` and ``rng``; the iterations the checkpoint holds (``recorded``, from
    run.json, for checkpoints written before they carried their own count)."""
    payload = load_checkpoint(path)
    if payload.get("learner") != learner.name:
        raise RunError(
            f"checkpoint {path} holds a {payload.get('learner')} learner, not {learner.name}"
        )
    try:
        learner.load_state_dict(payload["state"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise RunError(f"checkpoint {path} does not fit this config's networks ({exc})") from None
    rng.bit_generator.state = json.loads(payload["rng"])
    return int(payload.get("iteration", recorded))


def experiment_of_run(run_dir: Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Rebuild a run's experiment from its saved ``config.toml``."""
    from market_metarl.config import read_toml

    cfg = read_toml(Path(run_dir) / "config.toml")
    cfg.update(overrides or {})
    return Experiment.from_config(cfg)


def run_shapes(run_dir: Path) -> Shapes:
    """Observation shapes recorded in a run's ``run.json``."""
    shapes = read_run_json(run_dir).get("shapes")
    if not shapes:
        raise RunError(f"{run_dir} has no trained learner yet; train (or resume) it first")
    return Shapes(int(shapes["obs_dim"]), int(shapes["n_assets"]), tuple(shapes["position"]))


def load_learner(
    run_dir: Path,
    name: str,
    exp: Experiment,
    payload: dict[str, Any] | None = None,
    shapes: Shapes | None = None,
) -> Learner:
    """A trained learner from a run directory (``maml``, ``rl2``, ``pooled``...).

    ``payload`` (the checkpoint already read by :func:`load_checkpoint`) and ``shapes`` let a
    copy of the run shipped to another machine rebuild it without access to ``run_dir``.
    """
    learner = build_learner(name, exp, shapes or run_shapes(run_dir), 0)
    if payload is None:
        payload = load_checkpoint(Path(run_dir) / "checkpoints" / f"{name}.pt")
    if payload.get("learner") != name:
        raise RunError(f"checkpoint of {name} in {run_dir} holds a {payload.get('learner')}")
    try:
        learner.load_state_dict(payload["state"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise RunError(f"checkpoint {name} in {run_dir} does not fit its config ({exc})") from None
    return learner


def with_iterations(exp: Experiment, iterations: int | None) -> Experiment:
    """The experiment with ``train.iterations`` overridden (the CLI's ``--iterations``)."""
    if iterations is None:
        return exp
    return replace(exp, train=replace(exp.train, iterations=iterations))
