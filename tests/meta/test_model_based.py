"""Model-based meta-RL: the planner's known optimum, online adaptation, training that adapts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from meta_helpers import small_config

from market_metarl.meta.algos.model_based_agent import ModelBasedAgent, plan_weights
from market_metarl.meta.episodes import next_day_returns
from market_metarl.meta.evaluation import evaluate_adaptation
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.trainer import train


def _plan(m: float, s: float, held: float, cost: float, **kw: float) -> float:
    args = {"gamma": 1.0, "low": -1.0, "high": 1.0, "borrow_daily": 0.0} | kw
    return float(
        plan_weights(
            np.array([m]),
            np.array([s]),
            np.array([held]),
            args["gamma"],
            cost,
            args["low"],
            args["high"],
            args["borrow_daily"],
        )[0]
    )


def test_planner_soft_threshold_by_hand() -> None:
    # m/(gamma s^2) = 0.0002/0.0004 = 0.5; no-trade band half-width c/(gamma s^2) = 0.25
    m, s, c = 0.0002, 0.02, 0.0001
    assert _plan(m, s, 0.0, 0.0) == pytest.approx(0.5)  # no costs: the mean-variance weight
    assert _plan(m, s, 0.0, c) == pytest.approx(0.25)  # buys up to the band's edge
    assert _plan(m, s, -0.5, c) == pytest.approx(0.25)  # from a short: same edge
    assert _plan(m, s, 0.4, c) == pytest.approx(0.4)  # inside the band: no trade
    assert _plan(m, s, 0.7, c) == pytest.approx(0.7)  # the band's upper edge: 0.5 + 0.25
    assert _plan(m, s, 0.9, c) == pytest.approx(0.75)  # sells down to the edge
    assert _plan(m, s, 0.0, c, gamma=2.0) == pytest.approx(0.125)  # 0.25 - 0.125
    # the leverage cap: the unconstrained 5 - 2.5 = 2.5 is clipped to L
    assert _plan(0.002, s, 0.0, c) == pytest.approx(1.0)
    assert _plan(-0.002, s, 0.0, c, high=1.5, low=-1.5) == pytest.approx(-1.5)
    # long-only: a negative expectation means flat, not short
    assert _plan(-0.0002, s, 0.3, 0.0, low=0.0) == pytest.approx(0.0)
    # borrow cost on shorts: (m + b)/(gamma s^2) = (-0.0002 + 0.0001)/0.0004
    assert _plan(-0.0002, s, 0.0, 0.0, borrow_daily=0.0001) == pytest.approx(-0.25)


def test_planner_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    grid = np.linspace(-1.0, 1.0, 40001)
    for _ in range(50):
        m, s = rng.normal(0, 0.003), rng.uniform(0.005, 0.03)
        h, c, b = rng.uniform(-1, 1), rng.uniform(0, 0.002), rng.uniform(0, 0.0005)
        u = grid * m - 0.5 * grid**2 * s**2 - c * np.abs(grid - h) - b * np.maximum(-grid, 0)
        w = _plan(m, s, h, c, borrow_daily=b)
        uw = w * m - 0.5 * w**2 * s**2 - c * abs(w - h) - b * max(-w, 0.0)
        assert uw >= u.max() - 1e-12
        assert abs(w - grid[np.argmax(u)]) < 1e-3 or abs(uw - u.max()) < 1e-12


@pytest.fixture(scope="module")
def mb_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Experiment, Path]:
    exp = Experiment.from_config(
        small_config(
            iterations=1, pooled={"iterations": 1}, model_based={"iterations": 150, "batch": 8}
        )
    )
    out = tmp_path_factory.mktemp("mb") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only contend with the other test worker
    try:
        train(exp, "model_based", out, seed=0)
    finally:
        torch.set_num_threads(threads)
    return exp, out


def test_short_model_based_run_improves_after_adaptation(
    mb_run: tuple[Experiment, Path],
) -> None:
    exp, out = mb_run
    agent = TrainedRun.open(out).agent("adapted")
    assert isinstance(agent, ModelBasedAgent) and agent.name == "adapted"
    pool = exp.pool("test")
    episode = pool.episode(list(range(len(pool))), exp.train.window_days)
    k, h = exp.train.adapt_days, exp.train.horizon
    agent.online = False  # the support days' adaptation alone
    results = evaluate_adaptation(agent, episode, k, h)
    pre = np.mean([r.pre_sharpe for r in results])
    post = np.mean([r.post_sharpe for r in results])
    assert post > pre + 0.5, (pre, post)
    agent.online = True
    results = evaluate_adaptation(agent, episode, k, h, tasks=[0, 1])
    weights = np.concatenate([r.post_weights for r in results])
    assert np.abs(weights).max() <= 1.0 + 1e-9 and np.abs(weights).max() > 0


def test_online_adaptation_equals_adapting_on_the_longer_support(
    mb_run: tuple[Experiment, Path],
) -> None:
    # Acting on day t's observation and then day t+1's adds the transition (obs_t, r_t+1): the
    # same memory, hence the same model, as adapting on one more support day.
    exp, out = mb_run
    agent = TrainedRun.open(out).agent("adapted")
    assert isinstance(agent, ModelBasedAgent)
    ep = exp.pool("test").episode([0], exp.train.window_days)
    agent.init()
    agent.adapt(ep.window(0, 5))
    for t in (5, 6):
        obs = ep.obs[0, t].numpy().copy()
        obs[ep.position_slice] = 0.3  # the held weight is not read by the model
        agent.act(obs)
    online = {k: v.clone() for k, v in agent.params.items()}
    agent.init()
    agent.adapt(ep.window(0, 6))
    for k, v in agent.params.items():
        assert np.allclose(online[k].numpy(), v.numpy(), atol=1e-5), k
    # the transitions' targets: the next day's close-to-close log return, the next obs' log_ret
    y = next_day_returns(ep)[0, :, 0].numpy()
    assert np.allclose(y[:-1], ep.obs[0, 1:, agent.return_index[0]].numpy(), atol=1e-6)
