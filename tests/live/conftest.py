"""Fixtures of the paper-trading tests: tiny trained runs (synthetic tasks, a few iterations)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

SMALL_CONFIG: dict[str, Any] = {
    "data": {"symbols": ["synthetic:ar-regimes?seed=1&tasks=60&days=71"], "warmup_days": 2},
    "regimes": {"method": "known", "min_task_days": 71},
    "splits": {
        "train": ["2000-01-01", "2009-12-31"],
        "test": ["2010-03-01", "2019-12-31"],
        "embargo_days": 20,
    },
    "costs": {"fee_bps": 1.0, "slippage_bps": 2.0, "borrow_bps_annual": 50.0},
    "features": {"vol_window": 0, "momentum_horizons": [], "volume_window": 0, "drawdown": False},
    "env": {"window": 2, "action": "continuous", "max_drawdown": 1.0},
    "train": {"iterations": 3, "checkpoint_every": 3, "position_input": True, "adapt_days": 10},
    "paper": {
        # rolling: adapt on the last 10 days every 5 days; guardrails that never bind
        "every": 5,
        "max_gross": 10.0,
        "max_turnover": 10.0,
        "max_drawdown": 1.0,
        "fallback": False,
    },
}
"""A tiny synthetic task distribution (trains in seconds) with a never-binding ``[paper]`` table."""


def train_run(
    out: Path,
    algo: str = "maml",
    paper: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> Path:
    """Train a tiny run into ``out`` in-process (``train``: keys merged into ``[train]``; a dict
    value is an algorithm table, e.g. ``{"pearl": {"iterations": 3}}``)."""
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.trainer import train as train_

    cfg = copy.deepcopy(SMALL_CONFIG)
    if paper is not None:
        cfg["paper"] = paper
    cfg["train"].update(train or {})
    return train_(Experiment.from_config(cfg), algo, out)


@pytest.fixture(scope="session")
def maml_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained MAML run (and its pooled baseline) whose guardrails never bind."""
    return train_run(tmp_path_factory.mktemp("runs") / "maml")


@pytest.fixture(scope="session")
def rl2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained RL^2 run whose guardrails never bind."""
    return train_run(tmp_path_factory.mktemp("runs") / "rl2", "rl2")


PEARL_TRAIN: dict[str, Any] = {"pearl": {"iterations": 3}}
"""PEARL's own budget (its default is 1500 updates, not ``iterations``): a few updates suffice."""


@pytest.fixture(scope="session")
def pearl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained PEARL run (tiny budget) whose guardrails never bind."""
    return train_run(tmp_path_factory.mktemp("runs") / "pearl", "pearl", train=PEARL_TRAIN)
