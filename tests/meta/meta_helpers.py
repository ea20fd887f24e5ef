"""Shared pieces of the meta tests: a small synthetic config, and comparing two runs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import torch

from market_metarl.meta.rundir import load_checkpoint

SMALL_SYNTHETIC = """
[data]
symbols = ["synthetic:ar-regimes?seed=1&tasks=60&days=71"]
warmup_days = 2

[regimes]
method = "known"
min_task_days = 71

[splits]
train = ["2000-01-01", "2009-12-31"]
test = ["2010-03-01", "2019-12-31"]
embargo_days = 20

[costs]
fee_bps = 0.0
slippage_bps = 0.0
borrow_bps_annual = 0.0

[features]
vol_window = 0
momentum_horizons = []
volume_window = 0
drawdown = false

[env]
window = 1
action = "continuous"
max_drawdown = 1.0

[train]
iterations = 4
checkpoint_every = 2
position_input = false

[train.maml]
batch = 4

[train.rl2]
batch = 8

[train.pooled]
batch = 8
"""


def small_config(**train: Any) -> dict[str, Any]:
    """The small synthetic config, with ``[train]`` overrides.

    A dict value overrides keys of the algorithm table of that name (``maml={"batch": 5}``
    updates ``[train.maml]``); any other value sets a ``[train]`` key.
    """
    cfg = tomllib.loads(SMALL_SYNTHETIC)
    for key, value in train.items():
        if isinstance(value, dict):
            cfg["train"].setdefault(key, {}).update(value)
        else:
            cfg["train"][key] = value
    return cfg


def tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a (nested) state dict, by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(tensors(value, f"{prefix}/{key}"))
    return out


def same_run(a: Path, b: Path, learner: str) -> None:
    """Assert that two runs saved bit-identical parameters for ``learner``."""
    sa = tensors(load_checkpoint(a / "checkpoints" / f"{learner}.pt")["agent"])
    sb = tensors(load_checkpoint(b / "checkpoints" / f"{learner}.pt")["agent"])
    assert sa.keys() == sb.keys() and len(sa) > 4
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
