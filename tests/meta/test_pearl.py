"""PEARL: a permutation-invariant posterior, online updates, and training that adapts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from meta_helpers import SMALL_SYNTHETIC, small_config

from market_metarl.cli import main
from market_metarl.meta.algos.pearl_agent import (
    ContextEncoder,
    PearlAgent,
    kl_to_prior,
    posterior,
    running_posterior,
)
from market_metarl.meta.episodes import next_day_returns
from market_metarl.meta.evaluation import evaluate_adaptation
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.trainer import train


def test_posterior_is_permutation_invariant(small_exp: Experiment) -> None:
    torch.manual_seed(0)
    encoder = ContextEncoder(obs_dim=small_exp.pool("train").obs_dim, n_assets=1, latent=5)
    ep = small_exp.pool("train").episode([0, 1], 9)
    obs, y = ep.obs, next_day_returns(ep)
    mean, var = posterior(*encoder(obs, y))
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    shuffled_mean, shuffled_var = posterior(*encoder(obs[:, perm], y[:, perm]))
    assert torch.allclose(mean, shuffled_mean, atol=1e-6)
    assert torch.allclose(var, shuffled_var, atol=1e-7)
    assert not torch.allclose(mean[0], mean[1])  # it does read the transitions
    # prefixes: row t uses transitions 0..t-1, row 0 is the prior, the last row everything
    run_mean, run_var = running_posterior(*encoder(obs, y))
    assert torch.allclose(run_mean[:, 0], torch.zeros(5)) and torch.allclose(
        run_var[:, 0], torch.ones(5)
    )
    assert torch.allclose(run_mean[:, -1], mean, atol=1e-6)
    assert torch.allclose(kl_to_prior(torch.zeros(3), torch.ones(3)), torch.tensor(0.0))


@pytest.fixture(scope="module")
def pearl_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Experiment, Path]:
    exp = Experiment.from_config(
        small_config(iterations=1, pooled={"iterations": 1}, pearl={"iterations": 300, "batch": 16})
    )
    out = tmp_path_factory.mktemp("pearl") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only contend with the other test worker
    try:
        train(exp, "pearl", out, seed=0)
    finally:
        torch.set_num_threads(threads)
    return exp, out


def test_short_pearl_run_improves_after_adaptation(pearl_run: tuple[Experiment, Path]) -> None:
    exp, out = pearl_run
    agent = TrainedRun.open(out).agent("adapted")
    assert isinstance(agent, PearlAgent) and agent.name == "adapted"
    agent.online = False  # the support days' posterior alone
    pool = exp.pool("test")
    episode = pool.episode(list(range(len(pool))), exp.train.window_days)
    results = evaluate_adaptation(agent, episode, exp.train.adapt_days, exp.train.horizon)
    pre = np.mean([r.pre_sharpe for r in results])
    post = np.mean([r.post_sharpe for r in results])
    assert post > pre + 0.5, (pre, post)


def test_acting_online_equals_a_longer_support(pearl_run: tuple[Experiment, Path]) -> None:
    exp, out = pearl_run
    agent = TrainedRun.open(out).agent("adapted")
    assert isinstance(agent, PearlAgent)
    ep = exp.pool("test").episode([0], exp.train.window_days)
    agent.init()
    agent.adapt(ep.window(0, 5))
    for t in (5, 6):
        obs = ep.obs[0, t].numpy().copy()
        obs[ep.position_slice] = -0.2  # the encoder does not read the held weight
        agent.act(obs)
    online = agent.task_state()["posterior_mean"]
    agent.init()
    agent.adapt(ep.window(0, 6))
    assert np.allclose(online, agent.task_state()["posterior_mean"], atol=1e-5)
    agent.online = False
    agent.init()
    agent.adapt(ep.window(0, 5))
    before = agent.task_state()["posterior_mean"]
    agent.act(ep.obs[0, 5].numpy())
    agent.act(ep.obs[0, 6].numpy())
    assert np.array_equal(before, agent.task_state()["posterior_mean"])


def test_same_seed_same_pearl_and_the_cli_trains_it(tmp_path: Path) -> None:
    exp = Experiment.from_config(
        small_config(
            pooled={"iterations": 1}, pearl={"iterations": 3}, model_based={"iterations": 3}
        )
    )
    train(exp, "pearl", tmp_path / "a", seed=3)
    train(exp, "pearl", tmp_path / "b", seed=3)
    a = torch.load(tmp_path / "a" / "checkpoints" / "pearl.pt", weights_only=True)["agent"]
    b = torch.load(tmp_path / "b" / "checkpoints" / "pearl.pt", weights_only=True)["agent"]
    for part in ("encoder", "policy"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    cfg = tmp_path / "small.toml"
    cfg.write_text(
        SMALL_SYNTHETIC + "\n[train.pearl]\niterations = 2\n[train.model_based]\niterations = 2\n"
    )
    for algo in ("pearl", "model_based"):
        out = tmp_path / algo
        assert main(["train", "--config", str(cfg), "--algo", algo, "--out", str(out)]) == 0
        agent = TrainedRun.open(out).agent("adapted")
        w = agent.act(exp.pool("test").episode([0], 3).obs[0, 0].numpy())
        assert w.shape == (1,) and abs(w[0]) <= 1.0
