"""Known answers for the accounting, the cost model and the simulator."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from env_bars import constant_bars, random_walk_bars

from market_metarl.data.bars import validate_bars
from market_metarl.envs import accounting
from market_metarl.envs.costs import CostModel, trailing_adv
from market_metarl.envs.simulator import MarketSimulator, ScalarSimulator
from market_metarl.envs.spec import ActionKind, EnvSpec
from market_metarl.envs.trading_env import TradingEnv
from market_metarl.types import CostSpec

COSTS = CostSpec(fee_bps=10.0, slippage_bps=5.0, borrow_bps_annual=252.0)
"""Proportional rate 0.0015; borrow 252 bps a year = exactly 1 bp a day."""


def run_episode(env: TradingEnv, actions: list) -> tuple[list[float], list[dict]]:
    env.reset(seed=0)
    rewards, infos = [], []
    for a in actions:
        _, reward, terminated, truncated, info = env.step(a)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return rewards, infos


@pytest.mark.parametrize("action", ["discrete", "continuous"])
def test_constant_prices_every_policy_loses_exactly_its_costs(action: ActionKind) -> None:
    spec = EnvSpec(window=5, action=action, max_leverage=1.5, levels=(-1.5, -0.5, 0.0, 0.7, 1.5))
    env = TradingEnv.from_bars(constant_bars(80), spec, COSTS)
    env.action_space.seed(7)
    env.reset(seed=7)
    weights, equity, prev = [], 100_000.0, 0.0
    while True:
        a = env.action_space.sample()
        _, _, terminated, truncated, info = env.step(a)
        w = env.actions.to_weight_scalar(a)
        # Constant prices: no drift, so the book holds exactly its last target.
        equity *= 1.0 - 0.0015 * abs(w - prev) - 1e-4 * max(-w, 0.0)
        weights.append(w)
        prev = w
        assert info["equity"] == pytest.approx(equity, rel=1e-13)
        if terminated or truncated:
            break
    assert len(weights) == env.market.tradable_days - 1
    assert env.sim.costs_paid == pytest.approx(100_000.0 - equity, rel=1e-10)


def test_buy_and_hold_follows_the_price_path_net_of_one_entry_cost() -> None:
    bars = random_walk_bars(200, seed=3)
    env = TradingEnv.from_bars(bars, EnvSpec(window=10), COSTS)
    _, infos = run_episode(env, [2] * 500)  # level 1.0
    first = env.market.first
    closes = bars["close"].to_numpy()
    entry_open = bars["open"].to_numpy()[first + 1]
    for k, info in enumerate(infos):
        expected = 100_000.0 * (1 - 0.0015) * closes[first + 1 + k] / entry_open
        assert info["equity"] == pytest.approx(expected, rel=1e-12)
        assert info["position"] == pytest.approx(1.0)
    assert [i["cost"] for i in infos[1:]] == pytest.approx([0.0] * (len(infos) - 1), abs=1e-6)


def three_day_bars() -> pd.DataFrame:
    o = [100.0, 102.0, 103.0, 100.0]
    c = [100.0, 104.0, 101.0, 98.0]
    frame = pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": 1e6,
        },
        index=pd.bdate_range("2020-01-06", periods=4, name="date"),
    )
    return validate_bars(frame)[0]


def test_hand_computed_three_days_with_fees_slippage_and_a_short() -> None:
    """Decide 1.0 on day 0, -0.5 on day 1, 0.0 on day 2; fee 10 bps, slippage 5, borrow 1 bp/day.

    Day 1 open 102: buy 1.0 of 100000 -> cost 0.0015 * 100000 = 150; shares 99850/102;
        close 104 -> equity 99850 * 104/102 = 101807.8431372549.
    Day 2 open 103: equity 99850*103/102 = 100828.92156862744, weight 1 -> -0.5 trades 1.5:
        cost 0.0015*1.5*E + 0.0001*0.5*E = 231.90651960784314; short 0.5 of 100597.01504902
        (-488.335 shares), cash 150895.52; close 101 -> equity 101573.6850980392, weight
        -0.5 * 100597.01504901961 / 103 * 101 / 101573.6850980392 = -0.48558.
    Day 3 open 100: equity 102062.020122549, weight -0.4784688995 (the short drifted); buy back
        -> cost 0.0015 * 0.47847 * E = 73.25025367647058; all cash: 101988.76986887254.
    """
    spec = EnvSpec(window=1, levels=(1.0, -0.5, 0.0))
    env = TradingEnv.from_bars(three_day_bars(), spec, COSTS, start="2020-01-06")
    rewards, infos = run_episode(env, [0, 1, 2])
    assert [i["cost"] for i in infos] == pytest.approx(
        [150.0, 231.90651960784314, 73.25025367647058], rel=1e-12
    )
    assert [i["equity"] for i in infos] == pytest.approx(
        [101807.8431372549, 101573.6850980392, 101988.76986887254], rel=1e-12
    )
    assert [i["position"] for i in infos] == pytest.approx(
        [1.0, -0.5 * 100597.01504901961 / 103 * 101 / 101573.6850980392, 0.0],
        rel=1e-9,
    )
    assert [i["date"].isoformat() for i in infos] == ["2020-01-07", "2020-01-08", "2020-01-09"]
    assert sum(rewards) == pytest.approx(math.log(101988.76986887254 / 100_000.0), rel=1e-12)
    assert infos[-1]["turnover"] == pytest.approx(0.4784688995215311, rel=1e-12)


def _random_book(
    rng: np.random.Generator, b: int, t: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (b, t + 1, n)), axis=1))
    opens = closes * np.exp(rng.normal(0, 0.01, closes.shape))
    weights = rng.uniform(-1.2, 1.2, (b, t, n)) / n
    return opens, closes, weights


def test_numpy_and_torch_accounting_agree() -> None:
    import torch

    rng = np.random.default_rng(0)
    opens, closes, weights = _random_book(rng, 3, 50, 4)
    w_init = rng.uniform(-0.3, 0.3, (3, 1, 4))
    g_np = accounting.growth_factors(weights, opens, closes, 0.0015, 1e-4, w_init)
    g_t = accounting.growth_factors(
        torch.from_numpy(weights),
        torch.from_numpy(opens),
        torch.from_numpy(closes),
        0.0015,
        1e-4,
        torch.from_numpy(w_init),
    )
    np.testing.assert_allclose(g_t.numpy(), g_np, rtol=1e-13)
    assert g_np.shape == (3, 50)


def test_simulator_reproduces_the_accounting_without_min_fee_or_impact() -> None:
    rng = np.random.default_rng(1)
    opens, closes, weights = _random_book(rng, 3, 60, 2)
    costs = CostModel.from_spec(COSTS)
    assert costs.weight_only
    sim = MarketSimulator(opens, closes, costs, 1e5)
    sim.reset(0)
    growth = np.stack([sim.step(weights[:, k]).growth for k in range(60)], axis=1)
    expected = accounting.growth_factors(weights, opens, closes, costs.rate, costs.borrow_daily)
    np.testing.assert_allclose(growth, expected, rtol=1e-12)
    np.testing.assert_allclose(sim.equity, 1e5 * expected.prod(axis=1), rtol=1e-11)


def test_scalar_simulator_equals_the_batched_one() -> None:
    rng = np.random.default_rng(2)
    opens, closes, weights = _random_book(rng, 1, 40, 1)
    costs = CostModel.from_spec(CostSpec(min_fee=5.0, impact_coef=0.1))
    inv_adv = np.full(opens.shape, 1 / 5e6)
    batched = MarketSimulator(opens, closes, costs, 1e5, inv_adv)
    scalar = ScalarSimulator(opens[0, :, 0], closes[0, :, 0], costs, 1e5, inv_adv[0, :, 0])
    batched.reset(0)
    scalar.reset(0)
    for k in range(40):
        step = batched.step(weights[:, k])
        growth, cost, _turnover, weight = scalar.step(float(weights[0, k, 0]))
        assert growth == pytest.approx(step.growth[0], rel=1e-14)
        assert cost == pytest.approx(step.cost[0], rel=1e-12)
        assert weight == pytest.approx(step.weights[0, 0], rel=1e-14)
    assert scalar.equity == pytest.approx(batched.equity[0], rel=1e-13)


def test_min_fee_and_impact_known_answers() -> None:
    spec = CostSpec(
        fee_bps=1.0, slippage_bps=2.0, min_fee=1.0, borrow_bps_annual=0.0, impact_coef=0.5
    )
    costs = CostModel.from_spec(spec)
    # 2000 traded: commission 0.2 -> topped to 1.0, slippage 0.4; impact 0.5*sqrt(2000/1e6)*2000.
    expected = 2000 * 3e-4 + (1.0 - 0.2) + 0.5 * math.sqrt(2000 / 1e6) * 2000
    assert costs.trade_cost(2000.0, 1 / 1e6) == pytest.approx(expected, rel=1e-12)
    # No order, no fee; a large order pays no top-up.
    assert costs.trade_cost(0.0, 1 / 1e6) == 0.0
    assert costs.trade_cost(1e6, 0.0) == pytest.approx(1e6 * 3e-4, rel=1e-12)
    # Arrays: per-asset orders, summed over the asset axis.
    arr = costs.trade_cost(np.array([[2000.0, 0.0]]), np.array([[1e-6, 1e-6]]))
    assert arr.shape == (1, 1) and arr[0, 0] == pytest.approx(expected, rel=1e-12)


def test_borrow_is_annual_bps_over_252_on_short_notional() -> None:
    costs = CostModel.from_spec(CostSpec(borrow_bps_annual=50.0))
    assert costs.borrow_daily == pytest.approx(50e-4 / 252)
    assert costs.borrow_cost(-0.5, 1e5) == pytest.approx(0.5 * 1e5 * 50e-4 / 252)
    assert costs.borrow_cost(0.5, 1e5) == 0.0


def test_trailing_adv_is_causal() -> None:
    close = np.arange(1.0, 41.0)[:, None]
    volume = np.full((40, 1), 10.0)
    adv = trailing_adv(close, volume, window=20)
    assert adv[0, 0] == 10.0
    assert adv[25, 0] == pytest.approx(np.mean(close[6:26, 0] * 10.0))
    altered = close.copy()
    altered[30:] *= 3
    np.testing.assert_array_equal(trailing_adv(altered, volume, 20)[:30], adv[:30])
