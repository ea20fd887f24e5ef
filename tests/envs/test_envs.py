"""The Gymnasium envs: contract (check_env), timing, lookahead, info, registration."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import pytest
from env_bars import random_walk_bars
from gymnasium.utils.env_checker import check_env

import market_metarl.envs as envs
from market_metarl.config import read_toml
from market_metarl.data.tasks import load_taskset
from market_metarl.envs.portfolio_env import PortfolioEnv
from market_metarl.envs.spec import EnvSpec, env_spec_from_config
from market_metarl.envs.trading_env import TradingEnv
from market_metarl.envs.vector_env import BatchedTradingEnv
from market_metarl.types import CostSpec

ROOT = Path(__file__).resolve().parents[2]
SPECS = {
    "discrete": EnvSpec(window=16),
    "continuous": EnvSpec(
        window=8, action="continuous", include_time=True, random_start=True, max_leverage=2.0
    ),
    "dsr": EnvSpec(window=4, reward="differential_sharpe", long_only=True),
    "drawdown": EnvSpec(window=4, reward="drawdown_penalised", drawdown_penalty=2.0),
}


def checked(env: gym.Env) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # unbounded features, by design
        warnings.filterwarnings("ignore", message=".*symmetric and normalized.*")  # leverage box
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_trading_env_passes_check_env(name: str) -> None:
    checked(TradingEnv.from_bars(random_walk_bars(250), SPECS[name]))


def test_portfolio_env_passes_check_env() -> None:
    bars = {s: random_walk_bars(250, seed=i) for i, s in enumerate("ABC")}
    env = PortfolioEnv.from_bars(bars, EnvSpec(window=8, action="continuous", long_only=True))
    checked(env)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([2.0, 2.0, 0.0], dtype=np.float32))
    assert info["position"].shape == (3,)
    assert np.abs(info["position"]).sum() == pytest.approx(1.0, abs=0.05)  # scaled to gross 1


@pytest.mark.parametrize("env_id", [envs.TRADING_ID, envs.PORTFOLIO_ID])
def test_registered_envs(env_id: str) -> None:
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert info["date"] >= dt.date(2010, 1, 1)
    assert env.observation_space.contains(obs)
    checked(env.unwrapped)


def _configs() -> list[Path]:
    return sorted((ROOT / "envs").glob("*.toml"))


@pytest.mark.parametrize("path", _configs(), ids=lambda p: p.name)
def test_every_config_builds_a_valid_env(path: Path) -> None:
    spec = env_spec_from_config(read_toml(path))
    taskset = load_taskset(path)
    env = envs.make_env(taskset.split("train")[0], spec)
    checked(env)


def test_reset_and_step_timing_and_info() -> None:
    bars = random_walk_bars(150, seed=5)
    env = TradingEnv.from_bars(bars, EnvSpec(window=10), start="2015-03-02")
    obs, info = env.reset(seed=1)
    d0 = env.market.first
    assert info["date"] == dt.date(2015, 3, 2) == bars.index[d0].date()
    assert obs.dtype == np.float32 and obs[0] == 0.0
    obs2, _, _, _, info = env.step(2)
    assert info["date"] == bars.index[d0 + 1].date()
    assert set(info) == {"date", "equity", "position", "cost", "turnover"}
    assert obs2[0] == np.float32(info["position"])
    obs2[:] = 7.0  # observations are copies: scribbling on one changes nothing else
    obs3, _, _, _, _ = env.step(2)
    assert not (obs3 == 7.0).all()
    assert not (env._table == 7.0).any()


def test_truncated_at_the_last_bar_and_step_after_end_raises() -> None:
    bars = random_walk_bars(120, seed=6)
    env = TradingEnv.from_bars(bars, EnvSpec(window=5))
    env.reset(seed=0)
    steps, truncated, info = 0, False, dict[str, Any]()
    while not truncated:
        _, _, terminated, truncated, info = env.step(1)
        assert not terminated
        steps += 1
    assert steps == env.market.tradable_days - 1
    assert info["date"] == bars.index[-1].date()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(1)


def test_terminated_on_drawdown_and_ruin() -> None:
    bars = random_walk_bars(300, seed=7, vol=0.05, drift=-0.01)
    env = TradingEnv.from_bars(
        bars, EnvSpec(window=5, max_drawdown=0.2, max_leverage=3.0, levels=(3.0,))
    )
    env.reset(seed=0)
    terminated = truncated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(0)
    assert terminated
    assert info["equity"] < 0.8 * 100_000 or info["equity"] < 0.05 * 100_000


def test_random_start_uses_only_the_env_rng() -> None:
    env = TradingEnv.from_bars(random_walk_bars(300), EnvSpec(window=5, random_start=True))
    dates = [env.reset(seed=s)[1]["date"] for s in range(6)]
    assert len(set(dates)) > 1
    assert [env.reset(seed=s)[1]["date"] for s in range(6)] == dates
    half = env.market.first + (env.market.last - env.market.first) // 2
    assert max(dates) <= env.market.date(half)


Step = tuple[Any, SupportsFloat, float, dt.date]
"""One trajectory step: observation, reward, equity, date of the close just marked."""


def _trajectory(env: gym.Env, policy: Callable[[np.ndarray], int], n: int) -> list[Step]:
    obs, info = env.reset(seed=0)
    out: list[Step] = [(obs, 0.0, info["equity"], info["date"])]
    for _ in range(n):
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        out.append((obs, reward, info["equity"], info["date"]))
        if terminated or truncated:
            break
    return out


def test_lookahead_altering_bars_after_t_changes_nothing_up_to_t() -> None:
    bars = random_walk_bars(260, seed=11)
    cut = bars.index[180]
    altered = bars.copy()
    later = altered.index > cut
    rng = np.random.default_rng(0)
    altered.loc[later, ["open", "high", "low", "close"]] *= rng.uniform(0.5, 1.5, (later.sum(), 1))
    altered.loc[later, "high"] = altered.loc[later, ["open", "high", "low", "close"]].max(axis=1)
    altered.loc[later, "low"] = altered.loc[later, ["open", "high", "low", "close"]].min(axis=1)
    altered.loc[later, "volume"] *= 3.0
    spec = EnvSpec(window=12, reward="differential_sharpe", include_time=False)
    costs = CostSpec(min_fee=1.0, impact_coef=0.2)

    def policy(obs: np.ndarray) -> int:  # positions depend on what is observed
        return int(obs[-4] > 0) * 2  # today's 20-day momentum

    a = _trajectory(TradingEnv.from_bars(bars, spec, costs), policy, 400)
    b = _trajectory(TradingEnv.from_bars(altered, spec, costs), policy, 400)
    upto = [k for k, step in enumerate(a) if np.datetime64(step[3]) <= np.datetime64(cut.date())]
    assert len(upto) > 100
    for k in upto:
        np.testing.assert_array_equal(a[k][0], b[k][0])
        assert a[k][1] == b[k][1] and a[k][2] == b[k][2]
    assert any(not np.array_equal(a[k][0], b[k][0]) for k in range(upto[-1] + 1, len(a)))

    # The batched env sees the same: rows up to T identical.
    va = BatchedTradingEnv.from_bars([bars], spec, costs)
    vb = BatchedTradingEnv.from_bars([altered], spec, costs)
    oa, _ = va.reset(seed=0)
    ob, _ = vb.reset(seed=0)
    for _k in upto[1:]:
        act = np.array([policy(oa[0])])
        np.testing.assert_array_equal(oa, ob)
        oa, ra, _, _, ia = va.step(act)
        ob, rb, _, _, ib = vb.step(act)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ia["equity"], ib["equity"])
