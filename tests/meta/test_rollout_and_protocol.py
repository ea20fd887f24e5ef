"""The pathwise objective prices exactly what the env books; protocols are causal and replayable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from market_metarl.data.synthetic import gbm
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import TradingEnv
from market_metarl.meta.agents import ConstantAgent
from market_metarl.meta.episodes import episode_from_markets, feature_index
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.policies import MLPPolicy, PolicySpec
from market_metarl.meta.protocol import rolling_target_at, rolling_targets
from market_metarl.meta.rollout import episode_log_returns, mlp_weights, pg_loss
from market_metarl.meta.run import STRATEGIES, TrainedRun
from market_metarl.types import CostSpec


def _market_and_env(costs: CostSpec) -> tuple[TaskMarket, EnvSpec, TradingEnv]:
    bars = gbm(seed=5, days=220)
    spec = EnvSpec(window=4, action="continuous", max_drawdown=1.0, ruin_equity=0.01)
    market = TaskMarket.from_bars({"X": bars}, spec.features, spec.window)
    return market, spec, TradingEnv(market, spec, costs)


def test_pathwise_rollout_books_what_the_env_books() -> None:
    costs = CostSpec(fee_bps=3.0, slippage_bps=2.0, borrow_bps_annual=80.0)
    market, spec, env = _market_and_env(costs)
    ep = episode_from_markets([market], spec, costs)
    torch.manual_seed(0)
    policy = MLPPolicy(ep.obs.shape[-1], 1, PolicySpec(hidden=8, position_input=True))
    policy.norm.fit(ep.obs, keep=ep.position_slice)
    params = dict(policy.named_parameters())
    with torch.no_grad():
        weights = mlp_weights(policy, params, ep)
        rets = episode_log_returns(ep, weights)[0].numpy()
    obs, _ = env.reset(seed=0)
    env_rets = []
    for t in range(ep.days):
        # the env's observation (position after drift included) is the rollout's, bit for bit
        with torch.no_grad():
            w = policy(torch.from_numpy(obs)[None]).double().numpy()[0]
        np.testing.assert_allclose(w, weights[0, t].numpy(), rtol=0, atol=1e-6)
        obs, _, terminated, truncated, info = env.step(weights[0, t].numpy().astype(np.float32))
        env_rets.append(np.log(info["equity"]))
        if terminated or truncated:
            break
    equity = np.exp(np.cumsum(rets))
    env_equity = np.array(env_rets)
    np.testing.assert_allclose(
        np.exp(env_equity - np.log(spec.initial_cash)), equity[: len(env_equity)], rtol=1e-5
    )


def test_score_function_estimator_gives_a_gradient() -> None:
    costs = CostSpec()
    market, spec, _ = _market_and_env(costs)
    ep = episode_from_markets([market], spec, costs)
    policy = MLPPolicy(ep.obs.shape[-1], 1, PolicySpec(hidden=8, head="gaussian"))
    loss = pg_loss(policy, dict(policy.named_parameters()), ep, torch.Generator().manual_seed(0))
    loss.backward()
    assert policy.out.weight.grad is not None and policy.out.weight.grad.abs().sum() > 0


def test_buy_and_hold_earns_the_price_path() -> None:
    market, spec, _ = _market_and_env(CostSpec(fee_bps=0.0, slippage_bps=0.0))
    ep = episode_from_markets([market], spec, CostSpec(fee_bps=0.0, slippage_bps=0.0))
    w = torch.ones(1, ep.days, 1, dtype=torch.float64)
    total = float(episode_log_returns(ep, w).sum())
    first_open, last_close = ep.opens[0, 1, 0], ep.closes[0, -1, 0]
    assert total == pytest.approx(float(torch.log(last_close / first_open)), abs=1e-12)


def test_feature_index_points_at_the_last_days_return(small_exp: Experiment) -> None:
    pool = small_exp.pool("test")
    idx = feature_index(small_exp.env, 1, "log_ret")
    obs, _, closes = pool.arrays[0]
    np.testing.assert_allclose(obs[1:, idx], np.log(closes[1:-1, 0] / closes[:-2, 0]), rtol=1e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rolling_protocol_replays_day_by_day(trained_run: Path, strategy: str) -> None:
    run = TrainedRun.open(trained_run)
    bars = gbm(seed=2, days=260)
    view = run.market_view(bars)
    agent = run.agent(strategy)
    start, stop, k, every = 30, 200, 10, 7
    full = rolling_targets(agent, view, start, stop, k, every)
    ep = view.episode
    for day in (30, 36, 37, 120, 199):
        live = run.market_view(bars.loc[: view.dates[day]], live=True)
        assert live.dates[-1] == view.dates[day]
        a = start + ((day - start) // every) * every
        held = np.zeros(1)
        if a > start:
            prev = full[a - start - 1]
            ratio = (ep.closes[0, a] / ep.opens[0, a]).numpy()
            held = prev * ratio / (1 + prev * (ratio - 1))
        target, block = rolling_target_at(agent, live, start, day, k, every, held, 0.0)
        assert block == a
        np.testing.assert_array_equal(target, full[day - start])


def test_rolling_protocol_has_no_lookahead(trained_run: Path) -> None:
    run = TrainedRun.open(trained_run)
    bars = gbm(seed=4, days=260)
    cut = bars.index[150]
    shocked = bars.copy()
    after = shocked.index > cut
    shocked.loc[after, ["open", "high", "low", "close"]] *= np.linspace(0.5, 2.0, after.sum())[
        :, None
    ]
    for strategy in ("adapted", "finetune", "pooled"):
        a = rolling_targets(run.agent(strategy), run.market_view(bars), 30, 200, 10, 5)
        b = rolling_targets(run.agent(strategy), run.market_view(shocked), 30, 200, 10, 5)
        view = run.market_view(bars)
        upto = int(view.dates.searchsorted(pd.Timestamp(cut), side="right")) - 30
        np.testing.assert_array_equal(a[:upto], b[:upto])
        assert not np.array_equal(a[upto:], b[upto:]) or strategy == "pooled"


def test_constant_agent_is_buy_and_hold() -> None:
    agent = ConstantAgent(1.0)
    assert agent.act(np.zeros(3)).tolist() == [1.0]
