"""Scaling benchmark: one sweep on the local backend and on Ray with 2 workers, in one run.

The sweep (``envs/synthetic.toml``, MAML, ``--settings`` values of ``train.maml.inner_lr`` x ``--seeds``
seeds) runs first on the ``local`` backend (every piece in this process, torch free to use every
core) and then on a local Ray with ``--workers`` CPUs (one piece per worker). Both write a table;
the benchmark checks that the two tables and every piece's parameter digest are identical, and
reports the wall-clock speed-up, with and without the seconds Ray takes to start.

It also times MAML meta-batches (``--meta-iterations`` of them, 16 tasks each) with the tasks of
each batch spread over the Ray workers, against the local backend: the per-task work there is a
few milliseconds, so this measures what shipping it costs.

Goal (issue 10): the sweep at least 1.6x faster with 2 workers than on the local backend.

Usage: ``python benchmarks/scaling.py [--seeds 2] [--settings 2] [--iterations 150]
[--workers 2]``. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from market_metarl.config import read_toml
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.rundir import Shapes
from market_metarl.meta.sweep import parse_grid, run_sweep
from market_metarl.meta.trainer import build_learner
from market_metarl.parallel import LOCAL, RayBackend

ROOT = Path(__file__).resolve().parents[1]

GOAL_SPEEDUP = 1.6
INNER_LRS = ("0.03", "0.05", "0.1", "0.2")


def strip(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in results]


def timed_sweep(
    cfg: dict[str, Any], args: argparse.Namespace, out: Path, backend: Any
) -> tuple[Any, float]:
    grid = parse_grid([f"train.maml.inner_lr={','.join(INNER_LRS[: args.settings])}"])
    t0 = time.perf_counter()
    result = run_sweep(cfg, "maml", args.seeds, grid, out, backend=backend)
    return result, time.perf_counter() - t0


def meta_batch_seconds(exp: Experiment, iterations: int, backend: Any) -> float:
    """Seconds per MAML update (sampling excluded), its tasks run by ``backend``.

    The per-task path (``[train.maml] vectorised = false``): the one whose tasks are backend pieces.
    """
    per_task = replace(exp.train.of("maml"), vectorised=False)
    exp = replace(exp, train=replace(exp.train, tables={**exp.train.tables, "maml": per_task}))
    pool = exp.pool("train")
    shapes = Shapes.of(pool)
    learner = build_learner("maml", exp, shapes, 0, pool.all_observations(), backend)
    rng = np.random.default_rng(0)
    batches = [
        pool.sample(exp.train.of("maml").batch, exp.train.window_days, rng)
        for _ in range(iterations + 2)
    ]
    learner.step(batches[0])  # warm-up: workers import torch, first allocations
    learner.step(batches[1])
    t0 = time.perf_counter()
    for ep in batches[2:]:
        learner.step(ep)
    return (time.perf_counter() - t0) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--settings", type=int, default=2, choices=range(1, len(INNER_LRS) + 1))
    parser.add_argument("--iterations", type=int, default=150, help="MAML iterations per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--meta-iterations", type=int, default=20)
    args = parser.parse_args()

    cfg = read_toml(ROOT / "envs" / "synthetic.toml")
    cfg["train"]["iterations"] = args.iterations
    cfg["train"].setdefault("pooled", {})["iterations"] = args.iterations
    pieces = args.seeds * args.settings
    print(
        f"machine: {os.cpu_count()} cores; sweep of {pieces} runs "
        f"({args.settings} inner_lr x {args.seeds} seeds, MAML {args.iterations} iterations)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        local, local_s = timed_sweep(cfg, args, work / "local", LOCAL)
        print(f"local backend: {local_s:.1f} s ({local_s / pieces:.1f} s a run)", flush=True)

        t0 = time.perf_counter()
        ray_backend = RayBackend(workers=args.workers)
        start_s = time.perf_counter() - t0
        try:
            remote, ray_s = timed_sweep(cfg, args, work / "ray", ray_backend)
            print(
                f"ray backend, {ray_backend.workers} workers: {ray_s:.1f} s "
                f"(+ {start_s:.1f} s to start Ray)",
                flush=True,
            )
            identical = strip(local.results) == strip(remote.results) and local.rows == remote.rows
            exp = Experiment.from_config(cfg)
            mb_local = meta_batch_seconds(exp, args.meta_iterations, LOCAL)
            mb_ray = meta_batch_seconds(exp, args.meta_iterations, ray_backend)
        finally:
            ray_backend.close()

    speedup = local_s / ray_s
    speedup_cold = local_s / (ray_s + start_s)
    print(
        f"sweep speed-up with {args.workers} workers: {speedup:.2f}x "
        f"({speedup_cold:.2f}x counting Ray's start); goal >= {GOAL_SPEEDUP}x: "
        f"{'met' if speedup >= GOAL_SPEEDUP else 'MISSED'}"
    )
    print(f"identical tables and parameters on both backends: {identical}")
    run_local = float(np.mean([r["train_seconds"] for r in local.results]))
    run_ray = float(np.mean([r["train_seconds"] for r in remote.results]))
    print(
        f"training seconds of one run (mean): local {run_local:.1f}, on a Ray worker {run_ray:.1f}"
    )
    print(
        f"one MAML meta-batch of {exp.train.of('maml').batch} tasks: local {mb_local * 1e3:.0f} ms, "
        f"tasks spread over Ray workers {mb_ray * 1e3:.0f} ms ({mb_local / mb_ray:.2f}x)"
    )
    print(
        json.dumps(
            {
                "cores": os.cpu_count(),
                "workers": args.workers,
                "runs": pieces,
                "maml_iterations": args.iterations,
                "local_sweep_s": round(local_s, 2),
                "ray_sweep_s": round(ray_s, 2),
                "ray_start_s": round(start_s, 2),
                "speedup": round(speedup, 3),
                "speedup_with_ray_start": round(speedup_cold, 3),
                "goal_speedup": GOAL_SPEEDUP,
                "goal_met": bool(speedup >= GOAL_SPEEDUP),
                "identical": bool(identical),
                "train_s_per_run_local": round(run_local, 2),
                "train_s_per_run_ray": round(run_ray, 2),
                "meta_batch_local_ms": round(mb_local * 1e3, 1),
                "meta_batch_ray_ms": round(mb_ray * 1e3, 1),
                "meta_batch_speedup": round(mb_local / mb_ray, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
