"""The batched env equals B single envs on the same actions, and autoresets as declared."""

from __future__ import annotations

from typing import Any, SupportsFloat

import numpy as np
import pytest
from env_bars import random_walk_bars
from gymnasium.vector import AutoresetMode

from market_metarl.envs.portfolio_env import PortfolioEnv
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import TradingEnv
from market_metarl.envs.vector_env import BatchedTradingEnv
from market_metarl.types import CostSpec

COSTS = CostSpec(fee_bps=2.0, slippage_bps=3.0, min_fee=2.0, impact_coef=0.1)


def _step_single(
    env: TradingEnv, action: Any, seed_done: bool
) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
    """One single-env step under NEXT_STEP autoreset semantics."""
    if env._done:
        obs, info = env.reset()
        return obs, 0.0, False, False, info
    return env.step(action)


@pytest.mark.parametrize(
    "spec",
    [
        EnvSpec(window=6, random_start=True, reward="differential_sharpe", include_time=True),
        EnvSpec(
            window=4,
            action="continuous",
            max_leverage=2.0,
            reward="drawdown_penalised",
            max_drawdown=0.1,
        ),
    ],
    ids=["discrete-dsr", "continuous-drawdown"],
)
def test_batched_env_equals_single_envs(spec: EnvSpec) -> None:
    bars = [random_walk_bars(90 + 15 * b, seed=b, vol=0.02) for b in range(5)]  # unequal lengths
    venv = BatchedTradingEnv.from_bars(bars, spec, COSTS)
    singles = [TradingEnv.from_bars(b, spec, COSTS) for b in bars]
    obs, infos = venv.reset(seed=3)
    for b, env in enumerate(singles):
        o, i = env.reset(seed=3 + b)
        np.testing.assert_array_equal(obs[b], o)
        assert infos["date"][b] == np.datetime64(i["date"])
    venv.action_space.seed(0)
    ends = 0
    for _ in range(400):
        actions = venv.action_space.sample()
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        for b, env in enumerate(singles):
            o, r, te, tr, i = _step_single(env, actions[b], True)
            np.testing.assert_array_equal(obs[b], o)
            assert rewards[b] == pytest.approx(r, rel=1e-12, abs=1e-12)
            assert infos["equity"][b] == pytest.approx(i["equity"], rel=1e-12)
            assert infos["cost"][b] == pytest.approx(i["cost"], rel=1e-12, abs=1e-9)
            assert (terminated[b], truncated[b]) == (te, tr)
            assert infos["date"][b] == np.datetime64(i["date"])
        ends += int((terminated | truncated).sum())
    assert ends >= 5  # every task ended at least once, so autoreset was exercised


def test_autoreset_is_next_step() -> None:
    assert BatchedTradingEnv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    bars = [random_walk_bars(80, seed=1), random_walk_bars(100, seed=2)]
    venv = BatchedTradingEnv.from_bars(bars, EnvSpec(window=3))
    first_obs, first_info = venv.reset(seed=0)
    short_len = venv.last[0] - venv.first[0]
    for _ in range(short_len - 1):
        _, _, terminated, truncated, _ = venv.step(np.array([2, 2]))
        assert not truncated.any() and not terminated.any()
    obs, _, _, truncated, info = venv.step(np.array([2, 2]))
    assert truncated.tolist() == [True, False]
    assert info["date"][0] == np.datetime64(bars[0].index[-1].date())
    assert obs[0, 0] == pytest.approx(1.0)  # final observation: still invested
    obs, reward, terminated, truncated, info = venv.step(np.array([2, 2]))
    # Task 0 was reset (its action ignored): first observation, reward 0, not done.
    np.testing.assert_array_equal(obs[0], first_obs[0])
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
    assert info["equity"][0] == 100_000.0 and info["date"][0] == first_info["date"][0]
    assert info["position"][0, 0] == 0.0
    assert reward[1] != 0.0


def test_batched_portfolio_equals_portfolio_env() -> None:
    spec = EnvSpec(window=5, action="continuous", long_only=True)
    tasks = [
        {s: random_walk_bars(120, seed=10 * b + k) for k, s in enumerate("XY")} for b in range(3)
    ]
    venv = BatchedTradingEnv.from_bars(tasks, spec)
    singles = [PortfolioEnv.from_bars(t, spec) for t in tasks]
    obs, _ = venv.reset(seed=0)
    for b, env in enumerate(singles):
        np.testing.assert_array_equal(obs[b], env.reset(seed=b)[0])
    rng = np.random.default_rng(0)
    for _ in range(50):
        actions = rng.uniform(0, 1, (3, 2)).astype(np.float32)
        obs, rewards, _, _, infos = venv.step(actions)
        for b, env in enumerate(singles):
            o, r, _, _, i = env.step(actions[b])
            np.testing.assert_allclose(obs[b], o, rtol=1e-6)
            assert rewards[b] == pytest.approx(r, rel=1e-12, abs=1e-15)
            np.testing.assert_allclose(infos["position"][b], i["position"], rtol=1e-12)


def test_step_before_reset_raises() -> None:
    venv = BatchedTradingEnv.from_bars([random_walk_bars(80)], EnvSpec(window=3))
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.array([1]))
