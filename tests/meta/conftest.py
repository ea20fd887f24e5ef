"""Fixtures for the meta layer: a small synthetic experiment and a trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
from meta_helpers import small_config

from market_metarl.meta.experiment import Experiment
from market_metarl.meta.trainer import train


@pytest.fixture(scope="session")
def small_exp() -> Experiment:
    return Experiment.from_config(small_config())


@pytest.fixture(scope="session")
def trained_run(small_exp: Experiment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "maml"
    train(small_exp, "maml", out, seed=0)
    return out
