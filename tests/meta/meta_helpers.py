"""Shared pieces of the meta tests: a small synthetic config."""

from __future__ import annotations

import tomllib
from typing import Any

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
rl2_iterations = 4
pooled_iterations = 4
meta_batch = 4
rl2_batch = 8
pooled_batch = 8
checkpoint_every = 2
position_input = false
"""


def small_config(**train: Any) -> dict[str, Any]:
    """The small synthetic config, with ``[train]`` overrides."""
    cfg = tomllib.loads(SMALL_SYNTHETIC)
    cfg["train"].update(train)
    return cfg
