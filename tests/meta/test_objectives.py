"""The pathwise objectives and volatility-scaled positions, on known answers.

- each objective's value on return series whose answer is written down;
- a constant volatility gives a constant scaling, and a policy whose signal is always 1 trades
  exactly the volatility-targeted long baseline of the backtest (same sigma_hat);
- the weight decided at the close of t does not move when bars after t change (no lookahead);
- the learners train under each objective, and refuse settings they do not implement.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from meta_helpers import small_config

from market_metarl.backtest.baselines import vol_target_weights
from market_metarl.data.features import FeatureSpec
from market_metarl.data.sources import load_bars
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.spec import EnvSpec
from market_metarl.meta.episodes import feature_index, market_arrays
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.objectives import Objective, task_objective, traded_weight
from market_metarl.meta.policies import PolicySpec, seeded_gru, seeded_mlp
from market_metarl.meta.rundir import Shapes
from market_metarl.meta.sizing import read_volatility, vol_scale
from market_metarl.meta.trainer import build_learner
from market_metarl.types import ConfigError

RETS = torch.tensor([[0.01, -0.02, 0.03, 0.0], [0.001, 0.001, 0.001, 0.001]], dtype=torch.float64)


def test_log_return_objective_is_minus_the_mean_in_per_cent() -> None:
    loss = task_objective(RETS, None, Objective())
    torch.testing.assert_close(loss, torch.tensor([-0.5, -0.1], dtype=torch.float64))


def test_mean_variance_objective_charges_half_the_variance_times_the_risk_aversion() -> None:
    loss = task_objective(RETS, None, Objective("mean_variance", risk_aversion=4.0))
    var0 = float(np.var([0.01, -0.02, 0.03, 0.0]))  # population variance
    expected = [-(0.005 - 2.0 * var0) * 100, -0.1]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))


def test_sharpe_objective_is_minus_the_annualised_sharpe_ratio() -> None:
    loss = task_objective(RETS, None, Objective("sharpe"))
    sd = float(np.std([0.01, -0.02, 0.03, 0.0]))
    assert float(loss[0]) == pytest.approx(-math.sqrt(252) * 0.005 / math.hypot(sd, 1e-4))
    # a constant return has no spread: the floor keeps the ratio finite (and large)
    assert float(loss[1]) == pytest.approx(-math.sqrt(252) * 0.001 / 1e-4)
    # scale-free: doubling every return leaves it (almost: the floor) unchanged
    doubled = task_objective(2 * RETS[:1], None, Objective("sharpe"))
    assert float(doubled[0]) == pytest.approx(float(loss[0]), rel=1e-3)


def test_turnover_charge_is_bps_per_unit_of_traded_weight_from_flat() -> None:
    weights = torch.tensor([[[0.5], [0.5], [-0.5], [0.0]]], dtype=torch.float64)
    torch.testing.assert_close(
        traded_weight(weights), torch.tensor([[0.5, 0.0, 1.0, 0.5]], dtype=torch.float64)
    )
    rets = torch.zeros(1, 4, dtype=torch.float64)
    loss = task_objective(rets, weights, Objective(turnover_bps=10.0))
    # 2.0 units traded over 4 days at 10 bp: mean charge 5 bp a day = 0.05 per cent
    assert float(loss[0]) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "kelly"}, "train.objective"),
        ({"risk_aversion": -1.0}, "train.risk_aversion"),
        ({"turnover_bps": float("nan")}, "train.turnover_bps"),
    ],
)
def test_bad_objective_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Objective(**kwargs)


def test_constant_volatility_gives_constant_scaling() -> None:
    obs = torch.zeros(5, 4)
    obs[:, 2] = 0.20  # every day's observed volatility
    scale = vol_scale(obs, torch.tensor([2]), 0.10, 2.0)
    torch.testing.assert_close(scale, torch.full((5, 1), 0.5))
    obs[:, 2] = 0.01  # a calm asset is capped at the leverage limit
    torch.testing.assert_close(
        vol_scale(obs, torch.tensor([2]), 0.10, 2.0), torch.full((5, 1), 2.0)
    )
    obs[:, 2] = 0.0  # unknown volatility (warm-up): no position
    torch.testing.assert_close(vol_scale(obs, torch.tensor([2]), 0.10, 2.0), torch.zeros(5, 1))


def _spy_obs(bars: pd.DataFrame, env: EnvSpec) -> tuple[np.ndarray, TaskMarket]:
    market = TaskMarket.from_bars(bars, env.features, env.window, start="2012-01-03")
    table, _, _ = market_arrays(market, env)
    return table, market


def _always_long(env: EnvSpec, spec: PolicySpec, obs_dim: int) -> torch.nn.Module:
    policy = seeded_mlp(obs_dim, 1, spec, seed=0)
    with torch.no_grad():
        policy.out.weight.zero_()
        policy.out.bias.fill_(20.0)  # tanh(20) == 1 in float32: a signal of 1 every day
    read_volatility(policy, [feature_index(env, 1, "vol")])
    return policy


def test_a_signal_of_one_trades_the_volatility_targeted_long_baseline() -> None:
    env = EnvSpec(window=3, action="continuous", features=FeatureSpec(vol_window=60))
    spec = PolicySpec(hidden=4, vol_target=0.15, max_leverage=1.5)
    bars = load_bars("bundled:SPY")
    table, market = _spy_obs(bars, env)
    policy = _always_long(env, spec, table.shape[1])
    with torch.no_grad():
        learned = policy(torch.from_numpy(table)).numpy()[:, 0]
    dates = pd.DatetimeIndex(market.dates[market.first : market.last])
    baseline = vol_target_weights(bars["close"], 0.15, 60, 1.5).reindex(dates).to_numpy()
    assert learned.shape == baseline.shape and (baseline > 0.2).all()
    np.testing.assert_allclose(learned, baseline, rtol=2e-5)  # float32 features
    assert (baseline < 1.5).any() and np.isclose(baseline, 1.5).any()  # scaled and capped


def test_vol_scaled_weights_before_t_ignore_every_bar_after_t() -> None:
    env = EnvSpec(window=5, action="continuous", features=FeatureSpec(vol_window=20))
    spec = PolicySpec(hidden=8, vol_target=0.1, max_leverage=2.0)
    bars = load_bars("bundled:SPY").loc["2011-06-01":"2013-12-31"]
    table, market = _spy_obs(bars, env)
    policy = seeded_mlp(table.shape[1], 1, spec, seed=3)
    read_volatility(policy, [feature_index(env, 1, "vol")])
    cut = pd.Timestamp("2013-03-28")
    shocked = bars.copy()
    after = shocked.index > cut
    shocked.loc[after, ["open", "high", "low", "close"]] *= np.linspace(0.5, 3.0, after.sum())[
        :, None
    ]
    table2, _ = _spy_obs(shocked, env)
    with torch.no_grad():
        w1 = policy(torch.from_numpy(table)).numpy()[:, 0]
        w2 = policy(torch.from_numpy(table2)).numpy()[:, 0]
    known = pd.DatetimeIndex(market.dates[market.first : market.last]) <= cut
    assert known.sum() > 100 and (~known).sum() > 100
    np.testing.assert_array_equal(w1[known], w2[known])
    assert not np.allclose(w1[~known], w2[~known])  # the perturbation did reach the policy


def test_the_gru_scales_its_signals_too() -> None:
    spec = PolicySpec(hidden=4, vol_target=0.2, max_leverage=1.0)
    policy = seeded_gru(6, 1, spec, seed=0)
    read_volatility(policy, [3])
    obs = torch.zeros(2, 6)
    obs[:, 3] = torch.tensor([0.4, 0.0])
    w, _ = policy(obs, torch.zeros(2, 1), torch.zeros(2), policy.initial_state(2))
    inputs = torch.cat([policy.norm(obs), torch.zeros(2, 1), torch.zeros(2, 1)], -1)
    signal = torch.tanh(policy.out(policy.cell(inputs, policy.initial_state(2))))
    torch.testing.assert_close(w, signal * torch.tensor([[0.5], [0.0]]))


def _vol_config(**train: object) -> dict:
    cfg = small_config(**train)
    cfg["features"]["vol_window"] = 5
    cfg["data"]["warmup_days"] = 5
    return cfg


@pytest.mark.parametrize("algo", ["maml", "pooled", "rl2"])
@pytest.mark.parametrize("objective", ["sharpe", "mean_variance"])
def test_learners_train_vol_scaled_under_each_objective(algo: str, objective: str) -> None:
    exp = Experiment.from_config(
        _vol_config(objective=objective, vol_target=0.15, turnover_bps=5.0, risk_aversion=3.0)
    )
    pool = exp.pool("train")
    learner = build_learner(algo, exp, Shapes.of(pool), 0, pool.all_observations())
    rng = np.random.default_rng(0)
    stats = [learner.step(pool.sample(learner.batch, exp.train.window_days, rng)) for _ in range(3)]
    assert all(math.isfinite(v) for s in stats for v in s.values())
    agent = learner.agent()
    table = pool.all_observations()
    obs = table.reshape(-1, table.shape[-1])[40].numpy()
    w = agent.act(obs)
    vol = obs[feature_index(exp.env, 1, "vol")]
    assert abs(float(w[0])) <= min(0.15 / vol, 1.0) + 1e-6


@pytest.mark.parametrize("algo", ["pearl", "model_based", "rl2_ppo"])
def test_learners_without_the_objectives_refuse_them(algo: str) -> None:
    exp = Experiment.from_config(_vol_config(objective="sharpe"))
    pool = exp.pool("train")
    with pytest.raises(ConfigError, match="apply to maml, pooled and rl2"):
        build_learner(algo, exp, Shapes.of(pool), 0, pool.all_observations())


def test_vol_target_without_the_vol_feature_is_refused() -> None:
    exp = Experiment.from_config(small_config(vol_target=0.15))  # vol_window = 0 there
    pool = exp.pool("train")
    with pytest.raises(ConfigError, match=r"\[features\] vol_window"):
        build_learner("maml", exp, Shapes.of(pool), 0, pool.all_observations())
