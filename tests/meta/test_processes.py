"""The process backend on a pool of 2 workers: the same parameters, metrics, backtests and sweep
tables as the local backend (the comparisons ``test_ray.py`` makes for Ray, without Ray).

One pool serves every test here (its workers take seconds to import torch).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from meta_helpers import same_run, small_config

from market_metarl.meta.experiment import Experiment
from market_metarl.meta.sweep import parse_grid, run_sweep
from market_metarl.meta.trainer import train
from market_metarl.parallel import LOCAL
from market_metarl.procpool import ProcessBackend

pytestmark = pytest.mark.xdist_group("processes")  # one pool for the module under -n


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessBackend]:
    backend = ProcessBackend(workers=2)
    yield backend
    backend.close()


@pytest.mark.parametrize("estimator", ["pathwise", "score_function"])
def test_per_task_maml_is_identical_to_the_local_backend(
    processes: ProcessBackend, tmp_path: Path, estimator: str
) -> None:
    """``vectorised = false``: every task of a meta-batch is a piece on the pool."""
    maml = {"batch": 5, "inner_steps": 2, "vectorised": False}
    exp = Experiment.from_config(small_config(iterations=4, estimator=estimator, maml=maml))
    train(exp, "maml", tmp_path / "local", seed=3, backend=LOCAL)
    train(exp, "maml", tmp_path / "proc", seed=3, backend=processes)
    for learner in ("maml", "pooled"):
        same_run(tmp_path / "local", tmp_path / "proc", learner)
    local_metrics = (tmp_path / "local" / "metrics.csv").read_text()
    assert (tmp_path / "proc" / "metrics.csv").read_text() == local_metrics


def test_backtest_is_identical_to_the_local_backend(
    processes: ProcessBackend, trained_run: Path
) -> None:
    from market_metarl.backtest.runner import compute
    from market_metarl.meta.run import TrainedRun

    kw: dict[str, Any] = {"seeds": 2, "strategies": ("adapted", "momentum", "buy_and_hold")}
    local = compute(TrainedRun.open(trained_run), None, "regime", **kw)
    remote = compute(TrainedRun.open(trained_run), None, "regime", backend=processes, **kw)
    assert [a.label for a in remote.accounts] == [a.label for a in local.accounts]
    assert len(local.accounts) >= 3
    for x, y in zip(local.accounts, remote.accounts, strict=True):
        assert x.equity.index.equals(y.equity.index)
        assert np.array_equal(x.equity.to_numpy(), y.equity.to_numpy())
        assert x.market.symbol == y.market.symbol


def test_sweep_is_identical_to_the_local_backend(processes: ProcessBackend, tmp_path: Path) -> None:
    cfg = small_config(iterations=2, pooled={"iterations": 2}, maml={"batch": 4})
    grid = parse_grid(["hidden=8,16"])
    local = run_sweep(cfg, "maml", 1, grid, tmp_path / "local")
    remote = run_sweep(cfg, "maml", 1, grid, tmp_path / "proc", backend=processes)

    def strip(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "train_seconds"} for r in results]

    assert strip(remote.results) == strip(local.results) and remote.rows == local.rows
    local_table = (tmp_path / "local" / "sweep.csv").read_text()
    assert (tmp_path / "proc" / "sweep.csv").read_text() == local_table
