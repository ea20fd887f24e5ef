"""A tiny synthetic trained run, shared by the backtest tests (trained once per worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

SYN_CONFIG = """
[data]
symbols = ["synthetic:ar-regimes?seed=1&tasks=24&days=71"]
warmup_days = 2
[regimes]
method = "known"
min_task_days = 71
[splits]
train = ["2000-01-01", "2003-12-31"]
test = ["2004-03-01", "2019-12-31"]
embargo_days = 20
[costs]
fee_bps = 1.0
slippage_bps = 2.0
borrow_bps_annual = 50.0
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
iterations = 3
checkpoint_every = 3
position_input = false
adapt_days = 5
horizon = 30
[train.maml]
batch = 4
[train.pooled]
batch = 8
finetune_steps = 2
scratch_steps = 3
[backtest]
vol_target = 0.15
block_days = 20
"""


@pytest.fixture(scope="session")
def syn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MAML run trained for 3 iterations on synthetic AR(1) regimes (with costs)."""
    from market_metarl.meta.experiment import Experiment
    from market_metarl.meta.trainer import train

    root = tmp_path_factory.mktemp("run")
    cfg = root / "syn.toml"
    cfg.write_text(SYN_CONFIG)
    return Path(train(Experiment.from_file(str(cfg)), "maml", root / "run"))
