"""Selection cost: what ``[train] select_on = "val"`` adds to training, per algorithm, in one run.

Each algorithm's learner is built as ``market-metarl train`` builds it (seed 0) and, side by side:
stepped on task windows sampled beforehand (sampling untimed), and scored on the validation
tasks by the trainer's own :class:`~market_metarl.meta.selection.Selection` (one score = every
validation task adapted on its K support days and traded for H query days). The machine may be
busy, so every round does one step and one score of every algorithm in turn, and the figures are
medians over rounds (``--warmup`` rounds untimed).

The overhead is ``score_ms / (select_every * step_ms)``: the fraction added to training time by
scoring every ``select_every`` iterations (the config's, default its ``checkpoint_every``). A
config without validation tasks (``envs/synthetic.toml``, ``envs/default.toml``) gets a val
split carved from the end of its training period (``--val-years``, after an embargo gap), as a
user would write one.

Usage: ``python benchmarks/selection_cost.py [--config envs/synthetic.toml] [--rounds 5]
[--warmup 1] [--algos maml,rl2] [--val-years 10]``. The last line printed is one JSON object:
``config``, ``val_tasks``, ``select_every``, and per algorithm ``step_ms``, ``score_ms`` and
``overhead`` (fraction of training time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from market_metarl.config import read_config
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.registry import algorithm_names
from market_metarl.meta.rundir import Shapes
from market_metarl.meta.selection import Selection
from market_metarl.meta.trainer import build_learner, torch_threads

ROOT = Path(__file__).resolve().parents[1]


def with_val(cfg: dict[str, Any], years: int) -> dict[str, Any]:
    """``cfg`` with ``select_on = "val"`` and, if it has none, a val split cut from train's end."""
    cfg["train"]["select_on"] = "val"
    splits = cfg["splits"]
    if not splits.get("val"):
        start, end = (dt.date.fromisoformat(d) for d in splits["train"])
        val_start = end.replace(year=end.year - years)
        gap = dt.timedelta(days=int(splits.get("embargo_days", 20) * 7 / 5) + 10)
        splits["train"] = [start.isoformat(), (val_start - gap).isoformat()]
        splits["val"] = [val_start.isoformat(), end.isoformat()]
    return cfg


def measure(exp: Experiment, algos: list[str], rounds: int, warmup: int) -> dict[str, Any]:
    """Median ms per step and per validation score of each algorithm (interleaved rounds)."""
    selection = Selection.of(exp)
    assert selection is not None
    pool = exp.pool("train")
    shapes = Shapes.of(pool)
    observations = pool.all_observations()
    rng = np.random.default_rng(0)
    learners = {a: build_learner(a, exp, shapes, 0, observations) for a in algos}
    windows = {
        a: [pool.sample(learner.batch, exp.train.window_days, rng) for _ in range(rounds)]
        for a, learner in learners.items()
    }
    steps: dict[str, list[float]] = {a: [] for a in algos}
    scores: dict[str, list[float]] = {a: [] for a in algos}
    with torch_threads(exp.train.threads):
        for r in range(rounds):
            for algo, learner in learners.items():
                t0 = time.perf_counter()
                learner.step(windows[algo][r])
                t1 = time.perf_counter()
                selection.score(learner)
                t2 = time.perf_counter()
                if r >= warmup:
                    steps[algo].append(t1 - t0)
                    scores[algo].append(t2 - t1)
    every = exp.train.select_every
    out: dict[str, Any] = {}
    for algo in algos:
        step_ms, score_ms = 1e3 * np.median(steps[algo]), 1e3 * np.median(scores[algo])
        out[algo] = {
            "step_ms": round(float(step_ms), 2),
            "score_ms": round(float(score_ms), 2),
            "overhead": round(float(score_ms / (every * step_ms)), 4),
        }
    return {"val_tasks": selection.episode.batch, "select_every": every, "algos": out}


def main() -> None:
    """Measure and print the table, then the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="envs/synthetic.toml")
    parser.add_argument("--rounds", type=int, default=5, help="rounds in all, warm-up included")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first rounds")
    parser.add_argument("--algos", help="comma-separated (default: every registered algorithm)")
    parser.add_argument("--val-years", type=int, default=10, help="val carved from train's end")
    args = parser.parse_args()
    if not 0 <= args.warmup < args.rounds:
        parser.error("need 0 <= --warmup < --rounds")
    algos = args.algos.split(",") if args.algos else list(algorithm_names())
    cfg = with_val(read_config(ROOT / args.config), args.val_years)
    exp = Experiment.from_config(cfg)
    result = measure(exp, algos, args.rounds, args.warmup)
    print(
        f"{args.config}: {result['val_tasks']} validation tasks, scored every "
        f"{result['select_every']} iterations"
    )
    for algo, row in result["algos"].items():
        print(
            f"  {algo:12s} step {row['step_ms']:8.2f} ms   score {row['score_ms']:8.2f} ms   "
            f"overhead {100 * row['overhead']:.2f}% of training time"
        )
    print(json.dumps({"config": args.config, **result}))


if __name__ == "__main__":
    main()
