"""``market-metarl sweep``: train and score every setting x seed of a grid (resumable)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING

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
    from market_metarl.meta.sweep import Grid, SweepResult


def register(sub: SubParsers) -> None:
    """Add ``sweep``."""
    p = sub.add_parser("sweep", help="train and score every setting x seed (resumable)")
    p.add_argument("--config", required=True, help="base config, e.g. envs/synthetic.toml")
    add_algo(p)
    p.add_argument("--seeds", type=int, default=1, help="seeds per setting (default 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument(
        "--grid",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=V1,V2",
        help="setting to vary, e.g. train.hidden=16,32 (a bare key is a [train] key)",
    )
    p.add_argument("--iterations", type=int, help="override [train] iterations")
    p.add_argument("--split", choices=["auto", "val", "test"], default="auto", help="tasks scored")
    p.add_argument("--out", required=True, help="sweep folder; rerun the command to resume")
    add_backend(p)
    add_json(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the sweep and print its table (mean post-adaptation Sharpe, 95% CI)."""
    from market_metarl.config import read_toml
    from market_metarl.meta.sweep import parse_grid, run_sweep

    require_positive(args, "seeds", "iterations")
    check_backend(args)
    cfg = read_toml(args.config)
    if args.iterations is not None:
        cfg.setdefault("train", {})["iterations"] = args.iterations
    grid = parse_grid(args.grid)
    algo = args.algo or str(cfg.get("train", {}).get("algo", "maml"))
    with text_to_stderr(args), backend_of(args) as backend:
        result = run_sweep(
            cfg, algo, args.seeds, grid, args.out, backend, args.seed, args.split, progress=True
        )
        _print_table(result, grid)
    if args.json:
        print_json(
            {
                "out": str(result.out),
                "table": str(result.out / "sweep.csv"),
                "algo": algo,
                "split": result.split,
                "ran": result.ran,
                "skipped": result.skipped,
                "rows": [{"rank": i, **asdict(row)} for i, row in enumerate(result.rows, 1)],
            }
        )
    return EXIT_OK


def _print_table(result: SweepResult, grid: Grid) -> None:
    """Say what ran, then the table (mean post-adaptation Sharpe, 95% CI) and where it is."""
    from market_metarl.meta.sweep import table_lines

    print(
        f"{result.ran} runs trained now, {result.skipped} found finished; "
        f"scored on the {result.split} tasks (mean post-adaptation Sharpe, 95% CI)"
    )
    if result.split == "test":
        print("note: the config has no val split, so the best score here is optimistic for test")
    for line in table_lines(result.rows, [k for k, _ in grid]):
        print(line)
    print(f"table written to {result.out / 'sweep.csv'}")
