"""``market-metarl train``: meta-train an algorithm (and its pooled baseline) with progress bars."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_metarl.cli._common import (
    EXIT_OK,
    SubParsers,
    add_algo,
    add_backend,
    add_json,
    backend_of,
    check_backend,
    print_json,
    require_positive,
    text_to_stderr,
)

if TYPE_CHECKING:
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.trainer import TrainEvent


def register(sub: SubParsers) -> None:
    """Add ``train``."""
    p = sub.add_parser("train", help="meta-train an algorithm and the pooled baseline")
    p.add_argument("--config", required=True, help="task distribution, e.g. envs/default.toml")
    add_algo(p)
    p.add_argument("--out", required=True, help="run directory, e.g. runs/default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, help="override [train] iterations")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--threads", type=int, help="override [train] threads: torch threads (default 1)"
    )
    p.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also log TensorBoard scalars to DIR/<run name>/ (needs: pip install tensorboard)",
    )
    add_backend(p)
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Train the run into ``--out``, one progress bar per learner."""
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.rundir import read_run_json
    from market_metarl.meta.trainer import train, with_iterations, with_tensorboard, with_threads
    from market_metarl.seeding import seed_everything

    require_positive(args, "iterations", "threads")
    check_backend(args)
    seed_everything(args.seed)
    exp = with_iterations(Experiment.from_file(args.config), args.iterations)
    exp = with_threads(exp, args.threads)
    exp = with_tensorboard(exp, args.tensorboard)
    algo = args.algo or exp.train.algo
    started = time.perf_counter()
    with text_to_stderr(args), backend_of(args) as backend:
        print(
            f"{len(exp.tasks.split('train'))} train tasks, {len(exp.tasks.split('test'))} test tasks"
        )
        run_dir = train(
            exp,
            algo,
            args.out,
            seed=args.seed,
            resume=args.resume,
            on_event=_progress_bars(),
            backend=backend,
        )
        print(f"run written to {run_dir}")
        for learner, best in read_run_json(run_dir).get("selected", {}).items():
            print(f"{learner}: kept iteration {best['iteration']} (val score {best['score']:.3f})")
    if args.json:
        print_json(_summary(run_dir, time.perf_counter() - started, exp))
    return EXIT_OK


def _summary(run_dir: Path, seconds: float, exp: Experiment) -> dict[str, Any]:
    """The ``--json`` object of ``train``."""
    from market_metarl.meta.rundir import final_metrics, read_run_json

    state = read_run_json(run_dir)
    selected = {"selected": state["selected"]} if "selected" in state else {}
    return {
        "run_dir": str(run_dir),
        "algo": state["algo"],
        "seed": state["seed"],
        "iterations": state["iterations"],
        "seconds": round(seconds, 3),
        "train_tasks": len(exp.tasks.split("train")),
        "test_tasks": len(exp.tasks.split("test")),
        "metrics": final_metrics(run_dir / "metrics.csv"),
        **selected,
    }


def _progress_bars() -> Callable[[TrainEvent], None]:
    """A training-event callback that keeps one tqdm bar per learner."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_event(event: TrainEvent) -> None:
        bar = bars.get(event.learner)
        if bar is None:
            bar = bars[event.learner] = tqdm(total=event.total, desc=event.learner, unit="it")
        bar.update(event.iteration - bar.n)
        bar.set_postfix({k: f"{v:.3g}" for k, v in event.metrics.items()})
        if event.iteration == event.total:
            bar.close()

    return on_event
