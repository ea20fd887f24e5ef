"""The Ray backend on a local Ray with 2 CPUs: the same parameters, backtests and sweep tables as
the local backend, a worker that dies is retried, and a sweep interrupted under Ray resumes.

Grouped on one xdist worker (``--dist loadgroup``) so one Ray serves every test here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray", reason="needs the distributed extra: pip install -e '.[distributed]'")

from meta_helpers import same_run, small_config

from market_metarl.meta.experiment import Experiment
from market_metarl.meta.sweep import parse_grid, run_sweep
from market_metarl.meta.trainer import train
from market_metarl.parallel import LOCAL, RayBackend
from market_metarl.types import ConfigError, RunError

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def ray_backend() -> Iterator[RayBackend]:
    backend = RayBackend(workers=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def syn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny MAML run on synthetic regimes, with trading costs."""
    cfg = small_config(
        iterations=3, adapt_days=5, horizon=30, pooled={"iterations": 3, "scratch_steps": 3}
    )
    cfg["costs"] = {"fee_bps": 1.0, "slippage_bps": 2.0, "borrow_bps_annual": 50.0}
    out = tmp_path_factory.mktemp("ray-run") / "run"
    return train(Experiment.from_config(cfg), "maml", out, seed=0)


def test_ray_backend_sees_two_workers_and_keeps_item_order(ray_backend: RayBackend) -> None:
    assert ray_backend.workers == 2

    def slow_first(shared: int, item: int) -> int:
        import time

        time.sleep(0.3 if item == 0 else 0.0)
        return item * shared

    assert ray_backend.map(slow_first, list(range(7)), 3, chunks=2) == [3 * i for i in range(7)]
    finished = list(ray_backend.imap(slow_first, [0, 1], 5))
    assert sorted(finished) == [(0, 0), (1, 5)]


@pytest.mark.parametrize("estimator", ["pathwise", "score_function"])
def test_meta_training_is_identical_to_the_local_backend(
    ray_backend: RayBackend, tmp_path: Path, estimator: str
) -> None:
    exp = Experiment.from_config(
        small_config(iterations=4, estimator=estimator, maml={"batch": 5, "inner_steps": 2})
    )
    train(exp, "maml", tmp_path / "local", seed=3, backend=LOCAL)
    train(exp, "maml", tmp_path / "ray", seed=3, backend=ray_backend)
    for learner in ("maml", "pooled"):
        same_run(tmp_path / "local", tmp_path / "ray", learner)
    local_metrics = (tmp_path / "local" / "metrics.csv").read_text()
    assert (tmp_path / "ray" / "metrics.csv").read_text() == local_metrics


def test_backtest_is_identical_to_the_local_backend(ray_backend: RayBackend, syn_run: Path) -> None:
    from market_metarl.backtest.figures import statistics
    from market_metarl.backtest.runner import compute
    from market_metarl.meta.run import TrainedRun

    for protocol in ("regime", "rolling"):
        local = compute(TrainedRun.open(syn_run), None, protocol, seeds=2)
        remote = compute(TrainedRun.open(syn_run), None, protocol, seeds=2, backend=ray_backend)
        assert [a.label for a in remote.accounts] == [a.label for a in local.accounts]
        assert len({a.label for a in local.accounts}) > 5
        for x, y in zip(local.accounts, remote.accounts, strict=True):
            assert x.equity.index.equals(y.equity.index)
            assert np.array_equal(x.equity.to_numpy(), y.equity.to_numpy())
            assert np.array_equal(x.env_equity.to_numpy(), y.env_equity.to_numpy())
            assert x.market.symbol == y.market.symbol
        for symbol, rets in local.zero_shot.items():
            assert all(
                np.array_equal(u, v) for u, v in zip(rets, remote.zero_shot[symbol], strict=True)
            )
        s_local = statistics(local, 200, np.random.default_rng(0))
        s_remote = statistics(remote, 200, np.random.default_rng(0))
        assert s_local["figures"] == s_remote["figures"]
        assert s_local["intervals"] == s_remote["intervals"]


def test_sweep_matches_local_and_resumes_after_an_interruption(
    ray_backend: RayBackend, tmp_path: Path
) -> None:
    cfg = small_config(
        iterations=4, checkpoint_every=2, pooled={"iterations": 2}, maml={"batch": 4}
    )
    grid = parse_grid(["hidden=8,16"])
    local = run_sweep(cfg, "maml", 2, grid, tmp_path / "local")

    def stop(result: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, "maml", 2, grid, tmp_path / "ray", backend=ray_backend, on_result=stop)
    finished = len(list((tmp_path / "ray" / "results").glob("*.json")))
    assert finished == 1
    resumed = run_sweep(cfg, "maml", 2, grid, tmp_path / "ray", backend=ray_backend)
    assert (resumed.ran, resumed.skipped) == (3, 1)
    strip = [{k: v for k, v in r.items() if k != "train_seconds"} for r in local.results]
    assert [{k: v for k, v in r.items() if k != "train_seconds"} for r in resumed.results] == strip
    assert resumed.rows == local.rows
    local_table = (tmp_path / "local" / "sweep.csv").read_text()
    assert (tmp_path / "ray" / "sweep.csv").read_text() == local_table


def test_a_worker_that_dies_is_retried(ray_backend: RayBackend, tmp_path: Path) -> None:
    marker = str(tmp_path / "died-once")

    def die_once(shared: Any, item: int) -> int:
        import os

        if item == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies mid-piece
        return item + 100

    assert ray_backend.map(die_once, [0, 1, 2], None) == [100, 101, 102]
    assert Path(marker).exists()

    def always_dies(shared: Any, item: int) -> int:
        import os

        os._exit(1)

    fragile = RayBackend(max_retries=1)  # joins the running Ray
    with pytest.raises(RunError, match="a Ray worker died running piece 0 2 times"):
        list(fragile.imap(always_dies, [0]))


def test_an_error_in_a_piece_reaches_the_caller_unwrapped(ray_backend: RayBackend) -> None:
    def bad(shared: Any, item: int) -> int:
        raise ConfigError(f"item {item} is bad")

    with pytest.raises(ConfigError) as info:
        ray_backend.map(bad, [4], None)
    assert str(info.value) == "item 4 is bad"


def test_an_unreachable_cluster_is_a_one_line_error_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from market_metarl.cli import main

    with socket.socket() as sock:  # held, so nobody else takes it, but never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        argv = ["sweep", "--config", "envs/synthetic.toml", "--backend", "ray", "--out"]
        assert main([*argv, str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in err
    assert not (tmp_path / "s").exists()
