"""Training speed: milliseconds per iteration of every registered algorithm, in one run.

Each algorithm's learner is built as ``market-metarl train`` builds it (seed 0, the config's
``[train]`` and ``[train.<algo>]`` settings) and stepped on task windows sampled beforehand, so
sampling is not timed. Measured side by side:

- every algorithm at 1 and at 2 torch intra-op threads (``[train] threads``);
- MAML's two paths: the vectorised meta-batch (``[train.maml] vectorised = true``, the default)
  and the per-task pieces of the local backend (``vectorised = false``). Both learners step on
  the same windows, so the benchmark also reports how far their parameters drift apart.

The machine may be shared and busy, so the timings are interleaved: every round steps every
variant once, in turn, and the figures are medians over rounds (the MAML speed-up is the median
of each round's paired ratio). ``--warmup`` rounds run first, untimed.

Goal (issue "Speed where users wait"): MAML at least 5x faster per iteration than before.

Usage: ``python benchmarks/training_speed.py [--config envs/default.toml] [--rounds 5]
[--warmup 2] [--algos maml,rl2]``. The last line printed is one JSON object: ``maml_speedup``,
``threads_1_vs_2`` (per algorithm, ms at 1 thread over ms at 2: above 1 means two threads are
faster) and ``ms_per_iteration`` (per algorithm, at 1 thread, MAML vectorised), with the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from market_metarl.meta.contracts import Learner
from market_metarl.meta.episodes import Episode, TaskPool
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.registry import algorithm_names
from market_metarl.meta.rundir import Shapes
from market_metarl.meta.trainer import build_learner, torch_threads

ROOT = Path(__file__).resolve().parents[1]
GOAL_SPEEDUP = 5.0
THREADS = (1, 2)


@dataclass
class Variant:
    """One learner being timed: an algorithm (or MAML path) at a number of threads."""

    label: str
    threads: int
    learner: Learner
    episodes: list[Episode]
    seconds: list[float]


def with_maml_path(exp: Experiment, vectorised: bool) -> Experiment:
    """``exp`` with ``[train.maml] vectorised`` set."""
    tables = dict(exp.train.tables)
    tables["maml"] = replace(exp.train.of("maml"), vectorised=vectorised)
    return replace(exp, train=replace(exp.train, tables=tables))


def variants(exp: Experiment, pool: TaskPool, algos: list[str], rounds: int) -> list[Variant]:
    """Every (algorithm or MAML path) x threads learner, each with its own sampled windows."""
    shapes, observations = Shapes.of(pool), pool.all_observations()
    made = []
    for algo in algos:
        paths = [("maml", True), ("maml per-task", False)] if algo == "maml" else [(algo, True)]
        for label, vectorised in paths:
            variant_exp = with_maml_path(exp, vectorised)
            for threads in THREADS:
                learner = build_learner(algo, variant_exp, shapes, 0, observations)
                rng = np.random.default_rng(0)  # the same windows for every variant of an algo
                days = exp.train.window_days
                episodes = [pool.sample(learner.batch, days, rng) for _ in range(rounds)]
                made.append(Variant(label, threads, learner, episodes, []))
    return made


def run_rounds(made: list[Variant], rounds: int, warmup: int) -> None:
    """Step every variant once per round, in turn; record the timed rounds' seconds."""
    for r in range(rounds):
        for v in made:
            with torch_threads(v.threads):
                t0 = time.perf_counter()
                v.learner.step(v.episodes[r])
                elapsed = time.perf_counter() - t0
            if r >= warmup:
                v.seconds.append(elapsed)
        print(f"round {r + 1}/{rounds}{' (warm-up)' if r < warmup else ''} done", flush=True)


def median_ms(made: list[Variant], label: str, threads: int) -> float:
    """Median milliseconds per iteration of one variant."""
    (v,) = [v for v in made if v.label == label and v.threads == threads]
    return float(np.median(v.seconds) * 1e3)


def paired_speedup(made: list[Variant], threads: int) -> float:
    """Median over rounds of (per-task seconds / vectorised seconds) of MAML."""
    old = next(v for v in made if v.label == "maml per-task" and v.threads == threads)
    new = next(v for v in made if v.label == "maml" and v.threads == threads)
    return float(np.median(np.array(old.seconds) / np.array(new.seconds)))


def maml_drift(made: list[Variant]) -> float:
    """Largest absolute difference of the two MAML paths' parameters after the same windows."""
    old = next(v for v in made if v.label == "maml per-task" and v.threads == 1).learner
    new = next(v for v in made if v.label == "maml" and v.threads == 1).learner
    a, b = old.agent_state(), new.agent_state()
    return max(
        float((a[part][k] - b[part][k]).abs().max())
        for part in ("policy", "log_lr")
        for k in a[part]
    )


def report(made: list[Variant], args: argparse.Namespace) -> dict[str, Any]:
    """Print the table and the MAML figures; the JSON-ready summary."""
    labels = list(dict.fromkeys(v.label for v in made))
    ms = {t: {label: median_ms(made, label, t) for label in labels} for t in THREADS}
    print(f"\n{'algorithm':<16}{'1 thread ms':>14}{'2 threads ms':>14}{'1 vs 2':>9}")
    for label in labels:
        ratio = ms[1][label] / ms[2][label]
        print(f"{label:<16}{ms[1][label]:>14.1f}{ms[2][label]:>14.1f}{ratio:>9.2f}")
    out: dict[str, Any] = {
        "config": args.config,
        "cores": os.cpu_count(),
        "rounds": args.rounds - args.warmup,
        "torch": torch.__version__,
        "ms_per_iteration": {k: round(v, 1) for k, v in ms[1].items() if k != "maml per-task"},
        "ms_per_iteration_2_threads": {k: round(v, 1) for k, v in ms[2].items()},
        "threads_1_vs_2": {k: round(ms[1][k] / ms[2][k], 3) for k in labels},
    }
    if "maml" in labels:
        speedup = paired_speedup(made, 1)
        out |= {
            "maml_per_task_ms": round(ms[1]["maml per-task"], 1),
            "maml_vectorised_ms": round(ms[1]["maml"], 1),
            "maml_speedup": round(speedup, 2),
            "maml_speedup_2_threads": round(paired_speedup(made, 2), 2),
            "maml_speedup_ratio_of_medians": round(ms[1]["maml per-task"] / ms[1]["maml"], 2),
            "maml_max_param_diff": maml_drift(made),
            "goal_speedup": GOAL_SPEEDUP,
            "goal_met": bool(speedup >= GOAL_SPEEDUP),
        }
        print(
            f"\nMAML per iteration: per-task {ms[1]['maml per-task']:.0f} ms, vectorised "
            f"{ms[1]['maml']:.0f} ms: {speedup:.1f}x (median of paired rounds, 1 thread); goal "
            f">= {GOAL_SPEEDUP}x: {'met' if speedup >= GOAL_SPEEDUP else 'MISSED'}"
        )
        print(f"largest parameter difference of the two paths: {out['maml_max_param_diff']:.1e}")
    return out


def main() -> None:
    """Parse the options, build every variant, time the rounds, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="envs/default.toml")
    parser.add_argument("--rounds", type=int, default=7, help="rounds in all, warm-up included")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first rounds")
    parser.add_argument("--algos", help="comma-separated (default: every registered algorithm)")
    args = parser.parse_args()
    if not 0 <= args.warmup < args.rounds:
        parser.error("need 0 <= --warmup < --rounds")
    algos = args.algos.split(",") if args.algos else list(algorithm_names())

    t0 = time.perf_counter()
    exp = Experiment.from_file(str(ROOT / args.config))
    pool = exp.pool("train")
    print(
        f"{args.config}: {len(pool)} train tasks, {pool.n_assets} asset(s), K={exp.train.adapt_days}"
        f", H={exp.train.horizon}; loaded in {time.perf_counter() - t0:.0f} s; "
        f"{os.cpu_count()} cores; algorithms: {', '.join(algos)}",
        flush=True,
    )
    made = variants(exp, pool, algos, args.rounds)
    run_rounds(made, args.rounds, args.warmup)
    print(json.dumps(report(made, args)))


if __name__ == "__main__":
    main()
