"""An algorithm is a plug-in: one Algorithm registered from outside the package (this file) is
trained, backtested and paper-stepped through the command line, touching no other module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from market_metarl.cli import main
from market_metarl.meta.episodes import Episode
from market_metarl.meta.experiment import BuildContext
from market_metarl.meta.registry import Algorithm, algorithm_names, register, unregister
from market_metarl.meta.rollout import PNL_SCALE, episode_log_returns
from market_metarl.meta.rundir import write_toml

CONFIG: dict[str, Any] = {
    "data": {"symbols": ["synthetic:ar-regimes?seed=1&tasks=60&days=71"], "warmup_days": 2},
    "regimes": {"method": "known", "min_task_days": 71},
    "splits": {
        "train": ["2000-01-01", "2009-12-31"],
        "test": ["2010-03-01", "2019-12-31"],
        "embargo_days": 20,
    },
    "costs": {"fee_bps": 1.0, "slippage_bps": 2.0},
    "features": {"vol_window": 0, "momentum_horizons": [], "volume_window": 0, "drawdown": False},
    "env": {"window": 2, "action": "continuous", "max_drawdown": 1.0},
    "train": {"iterations": 3, "checkpoint_every": 3, "adapt_days": 10, "constant": {"lr": 0.5}},
    "paper": {"every": 5, "max_gross": 10.0, "max_turnover": 10.0, "max_drawdown": 1.0},
}
"""A tiny synthetic task family, as the paper-trading tests use."""


@dataclass(frozen=True)
class ConstantConfig:
    """``[train.constant]``: a learned constant weight.

    Attributes:
        iterations: Updates.
        batch: Task windows per update.
        lr: Step size.
    """

    iterations: int = 3
    batch: int = 4
    lr: float = 0.1


class ConstantAgent:
    """Holds ``tanh(b)``; adapting sets ``b`` to the support days' mean return sign."""

    name = "constant"

    def __init__(self, bias: float) -> None:
        self.prior = bias
        self.bias = bias

    def init(self) -> None:
        self.bias = self.prior

    def adapt(self, support: Episode) -> None:
        drift = float(torch.log(support.closes[0, -1, 0] / support.closes[0, 0, 0]))
        self.bias = self.prior + float(np.sign(drift))

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        return np.array([np.tanh(self.bias)])

    def task_state(self) -> dict[str, np.ndarray]:
        return {"bias": np.array([self.bias])}


class ConstantLearner:
    """Learns one bias by the pathwise PnL gradient."""

    name = "constant"

    def __init__(self, cfg: ConstantConfig) -> None:
        self.bias = torch.zeros(1, requires_grad=True)
        self.opt = torch.optim.SGD([self.bias], lr=cfg.lr)
        self.batch, self.iterations = cfg.batch, cfg.iterations

    def step(self, episode: Episode) -> dict[str, float]:
        weights = torch.tanh(self.bias).double().expand(episode.batch, episode.days, 1)
        loss = -episode_log_returns(episode, weights).mean() * PNL_SCALE
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach())}

    def agent_state(self) -> dict[str, Any]:
        return {"bias": self.bias.detach().clone()}

    def training_state(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.bias.copy_(state["bias"])

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])

    def agent(self) -> ConstantAgent:
        return ConstantAgent(float(self.bias.detach()))


def build(ctx: BuildContext) -> ConstantLearner:
    return ConstantLearner(ctx.experiment.train.of("constant"))


@pytest.fixture
def constant_algorithm() -> Iterator[None]:
    register(Algorithm("constant", ConstantConfig, build, summary="a learned constant weight"))
    yield
    unregister("constant")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_a_registered_algorithm_trains_backtests_and_paper_trades(
    constant_algorithm: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "constant" in algorithm_names()
    config = tmp_path / "small.toml"
    write_toml(config, CONFIG)
    run = tmp_path / "run"
    _run(capsys, "train", "--config", str(config), "--algo", "constant", "--out", str(run))
    state = json.loads((run / "run.json").read_text())
    assert state["algo"] == "constant" and state["iterations"] == {"constant": 3, "pooled": 3}
    assert "[train.constant]" in (run / "config.toml").read_text()

    out = tmp_path / "backtest"
    _run(capsys, "backtest", "--run", str(run), "--out", str(out), "--protocol", "rolling")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["algo"] == "constant"

    db = tmp_path / "paper.db"
    _run(capsys, "paper", "init", "--run", str(run), "--feed", "bundled:SPY", "--db", str(db))
    for day in ("2019-03-01", "2019-03-04"):
        _run(capsys, "paper", "step", "--db", str(db), "--asof", day)
    status = json.loads(_run(capsys, "paper", "status", "--db", str(db), "--json"))
    assert status["last_step"]["date"] == "2019-03-04"
    assert abs(status["last_step"]["adapted_target"]) <= 1.0
