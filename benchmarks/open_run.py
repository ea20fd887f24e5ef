"""Opening a trained run: with its recorded tasks (``tasks.json``) against rebuilding them.

Trains a run for ``--iterations`` on ``--config`` (``envs/real.toml`` when ``../shared/data/raw``
is there, else ``envs/default.toml``), makes a copy as runs were written before they recorded
their tasks (no ``tasks.json``, no ``tasks`` in ``run.json``: it opens by re-resolving the
config, loading every source and segmenting its regimes), then times ``TrainedRun.open`` on
each, every open in a fresh process (as ``backtest`` and ``paper step`` open it: no bars cached
in memory), interleaved over ``--rounds``; figures are medians. It checks both opens give the
same tasks, every field, and with ``--backtest`` that a regime-protocol backtest of the run's
own test tasks (``adapted``, ``pooled``, ``hmm_switch``) gives the same ``metrics.json``.

Goal (issue "runs that open without refitting"): opening no longer waits for the task set.

Usage: ``python benchmarks/open_run.py [--config envs/real.toml] [--iterations 2] [--rounds 3]
[--backtest] [--workdir DIR]``. The last line printed is one JSON object: ``open_s`` (median
seconds of ``TrainedRun.open``, ``recorded`` and ``rebuilt``), ``process_s`` (the whole process,
imports included), ``speedup``, ``tasks`` (how many), ``same_tasks`` and ``same_backtest``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT.parent / "shared" / "data" / "raw"
NAMES = ("adapted", "pooled", "hmm_switch")
OPEN = """
import json, sys, time
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.runtasks import tasks_digest
t0 = time.perf_counter()
run = TrainedRun.open(sys.argv[1])
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "tasks": tasks_digest(run.tasks.tasks), "n": len(run.tasks)}))
"""


def old_style(run_dir: Path, dest: Path) -> Path:
    """A copy of ``run_dir`` as runs were written before they recorded their tasks."""
    from market_metarl.meta.rundir import read_run_json, write_run_json
    from market_metarl.meta.runtasks import TASKS_FILE

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(run_dir, dest)
    (dest / TASKS_FILE).unlink()
    state = read_run_json(dest)
    del state["tasks"]
    write_run_json(dest, state)
    return dest


def open_in_process(run_dir: Path) -> dict[str, Any]:
    """Open ``run_dir`` in a fresh interpreter: its open time, wall time and task digest."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", OPEN, str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process"] = time.perf_counter() - t0
    return out


def same_backtest(new: Path, old: Path) -> bool:
    """Whether both runs' regime backtests of their own test tasks give the same metrics."""
    from market_metarl.backtest.runner import evaluate
    from market_metarl.meta.run import TrainedRun

    docs = []
    for run_dir in (new, old):
        run = TrainedRun.open(run_dir)
        doc, _ = evaluate(run, None, "regime", n_boot=100, run_label="run", strategies=NAMES)
        docs.append(json.dumps(doc, sort_keys=True, default=str))
    return docs[0] == docs[1]


def main() -> None:
    default = "envs/real.toml" if RAW.is_dir() else "envs/default.toml"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=default)
    parser.add_argument("--algo", default="maml")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backtest", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.trainer import train, with_iterations

    work = args.workdir or Path(tempfile.mkdtemp(prefix="open-run-"))
    new = work / "run"
    t0 = time.perf_counter()
    if not (new / "run.json").is_file():
        exp = with_iterations(Experiment.from_file(args.config), args.iterations)
        train(exp, args.algo, new)
    print(f"{args.config}: run trained in {time.perf_counter() - t0:.1f} s ({new})")
    old = old_style(new, work / "run-old")
    seen: dict[str, list[dict[str, Any]]] = {"recorded": [], "rebuilt": []}
    for r in range(args.rounds):
        for label, path in (("recorded", new), ("rebuilt", old)):
            seen[label].append(open_in_process(path))
            last = seen[label][-1]
            print(
                f"round {r}: {label:8s} open {last['seconds']:7.3f} s, process {last['process']:7.3f} s"
            )
    open_s = {k: statistics.median(o["seconds"] for o in v) for k, v in seen.items()}
    process_s = {k: statistics.median(o["process"] for o in v) for k, v in seen.items()}
    digests = {o["tasks"] for v in seen.values() for o in v}
    result = {
        "config": args.config,
        "iterations": args.iterations,
        "rounds": args.rounds,
        "tasks": seen["recorded"][0]["n"],
        "open_s": open_s,
        "process_s": process_s,
        "speedup": open_s["rebuilt"] / open_s["recorded"],
        "same_tasks": len(digests) == 1,
        "same_backtest": same_backtest(new, old) if args.backtest else None,
    }
    print(
        f"TrainedRun.open: {open_s['recorded']:.3f} s with tasks.json, {open_s['rebuilt']:.3f} s "
        f"rebuilding ({result['speedup']:.0f}x); whole process {process_s['recorded']:.2f} s vs "
        f"{process_s['rebuilt']:.2f} s; {result['tasks']} tasks, same: {result['same_tasks']}"
    )
    if args.backtest:
        print(f"regime backtest of the test tasks {NAMES}: same metrics: {result['same_backtest']}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
