"""Gymnasium conventions: ``gym.make`` with plain keywords, and the ``ansi``/``rgb_array`` renders."""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from env_bars import constant_bars, random_walk_bars
from gymnasium.utils.env_checker import check_env
from test_registration import run_python

from market_metarl.data.features import FeatureSpec
from market_metarl.envs import PORTFOLIO_ID, TRADING_ID
from market_metarl.envs.portfolio_env import PortfolioEnv
from market_metarl.envs.render import CHART_SIZE_PX
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import DEFAULT_TRADING_TASK, TradingEnv
from market_metarl.types import ConfigError, CostSpec, TaskSpec

START, END = dt.date(2012, 1, 3), dt.date(2012, 6, 29)
"""A short window every bundled symbol used here covers (QQQ starts 2011-03-23)."""


def inner(env: gym.Env) -> TradingEnv:
    """The market_metarl env under gym.make's wrappers."""
    assert isinstance(env.unwrapped, TradingEnv)
    return env.unwrapped


def rollout(env: gym.Env, actions: list[Any]) -> tuple[list[np.ndarray], list[float]]:
    """Observations and rewards of ``actions`` from ``reset(seed=0)``."""
    obs, _ = env.reset(seed=0)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return observations, rewards


def assert_same_rollout(a: gym.Env, b: gym.Env, actions: list[Any]) -> None:
    obs_a, rew_a = rollout(a, actions)
    obs_b, rew_b = rollout(b, actions)
    assert len(obs_a) == len(obs_b) == len(actions) + 1
    for x, y in zip(obs_a, obs_b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert rew_a == rew_b


# -- plain keywords --------------------------------------------------------------------------


def test_trading_plain_keywords_equal_the_dataclasses() -> None:
    plain = gym.make(
        TRADING_ID, symbol="QQQ", start="2012-01-03", end=END, window=10, fee_bps=5,
        reward="differential_sharpe", levels=[-0.5, 0.0, 0.5],
    )  # fmt: skip
    task = TaskSpec("bundled:QQQ", "QQQ", START, END, label="default")
    spec = EnvSpec(window=10, reward="differential_sharpe", levels=(-0.5, 0.0, 0.5))
    costs = CostSpec(fee_bps=5.0)
    records = gym.make(TRADING_ID, task=task, env_spec=spec, costs=costs)
    env = plain.unwrapped
    assert isinstance(env, TradingEnv)
    assert (env.task, env.env_spec, env.cost_spec) == (task, spec, costs)
    actions = [2, 2, 0, 1, 0, 2, 2, 2, 1, 0] * 6
    assert_same_rollout(plain, records, actions)


def test_a_csv_source_and_a_features_table(tmp_path: Path) -> None:
    path = tmp_path / "walk.csv"
    random_walk_bars(300).to_csv(path)
    plain = gym.make(
        TRADING_ID, source=f"csv:{path}", start="2015-06-01", end="2015-12-31",
        window=5, action="continuous", features={"vol_window": 10},
    )  # fmt: skip
    task = TaskSpec(f"csv:{path}", "WALK", dt.date(2015, 6, 1), dt.date(2015, 12, 31), "default")
    spec = EnvSpec(window=5, action="continuous", features=FeatureSpec(vol_window=10))
    assert inner(plain).task == task
    assert inner(plain).env_spec == spec
    # a built FeatureSpec is taken as it is
    built = gym.make(TRADING_ID, task=task, window=5, action="continuous", features=spec.features)
    assert inner(built).env_spec == spec
    actions = [np.array([w], dtype=np.float32) for w in np.linspace(-1, 1, 40)]
    assert_same_rollout(plain, TradingEnv(task, spec), actions)


def test_portfolio_plain_keywords_equal_the_dataclasses() -> None:
    plain = gym.make(
        PORTFOLIO_ID, symbols=["SPY", "QQQ"], start=START, end=END, window=8, max_leverage=2,
        slippage_bps=0,
    )  # fmt: skip
    tasks = [TaskSpec(f"bundled:{s}", s, START, END, label="default") for s in ("SPY", "QQQ")]
    spec = EnvSpec(window=8, action="continuous", max_leverage=2.0)
    costs = CostSpec(slippage_bps=0.0)
    env = plain.unwrapped
    assert isinstance(env, PortfolioEnv)
    assert (env.tasks, env.env_spec, env.cost_spec) == (tasks, spec, costs)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-2, 2, 2).astype(np.float32) for _ in range(50)]
    assert_same_rollout(
        plain, gym.make(PORTFOLIO_ID, tasks=tasks, env_spec=spec, costs=costs), actions
    )


def test_sources_and_dates_alone_keep_the_default_portfolio_settings() -> None:
    env = inner(gym.make(PORTFOLIO_ID, sources=["bundled:SPY", "bundled:IWM"], end="2010-06-30"))
    assert isinstance(env, PortfolioEnv)
    assert isinstance(env.tasks, list)
    assert [t.symbol for t in env.tasks] == ["SPY", "IWM"]
    assert {(t.start, t.end) for t in env.tasks} == {
        (DEFAULT_TRADING_TASK.start, dt.date(2010, 6, 30))
    }
    assert env.env_spec == EnvSpec(action="continuous")


def test_cost_keywords_change_only_their_field_of_the_tasks_costs() -> None:
    task = dataclasses.replace(DEFAULT_TRADING_TASK, costs=CostSpec(slippage_bps=7.0))
    env = inner(gym.make(TRADING_ID, task=task, fee_bps=3))
    assert env.cost_spec == CostSpec(fee_bps=3.0, slippage_bps=7.0)
    assert env.task == task


def message(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(exc.value)


TRADING_ERRORS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"windw": 10}, ("windw", "valid:", "window", "fee_bps", "symbol")),
    ({"env_spec": EnvSpec(), "window": 10}, ("window", "env_spec=")),
    ({"costs": CostSpec(), "fee_bps": 1}, ("fee_bps", "costs=")),
    ({"task": DEFAULT_TRADING_TASK, "symbol": "QQQ"}, ("symbol", "task=")),
    ({"task": DEFAULT_TRADING_TASK, "end": "2011-01-01"}, ("end", "task=")),
    ({"source": "bundled:QQQ", "symbol": "QQQ"}, ("source=", "symbol=")),
    ({"symbol": 7}, ("symbol", "7")),
    ({"window": "10"}, ("env.window", "'10'")),
    ({"window": 0}, ("env.window", "0")),
    ({"action": "hold"}, ("env.action", "'hold'", "'discrete'")),
    ({"long_only": 1}, ("env.long_only", "true or false")),
    ({"fee_bps": -1}, ("costs.fee_bps", "-1")),
    ({"fee_bps": float("nan")}, ("costs.fee_bps", "nan")),
    ({"start": "2012-13-01"}, ("start", "2012-13-01", "YYYY-MM-DD")),
    ({"start": "2012-06-01", "end": "2012-01-01"}, ("end=2012-01-01", "start=2012-06-01")),
    ({"features": {"vol_windw": 5}}, ("env.features.vol_windw",)),
]


@pytest.mark.parametrize(("kwargs", "expected"), TRADING_ERRORS, ids=lambda v: str(v)[:40])
def test_each_bad_trading_keyword_is_a_config_error_naming_it(
    kwargs: dict[str, Any], expected: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as exc:
        gym.make(TRADING_ID, **kwargs)
    for part in expected:
        assert part in message(exc)


PORTFOLIO_ERRORS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"symbol": "SPY"}, ("symbol", "valid:", "symbols", "sources")),
    ({"symbols": "SPY"}, ("symbols", "list")),
    ({"symbols": []}, ("symbols", "list")),
    ({"sources": ["bundled:SPY"], "symbols": ["SPY"]}, ("sources=", "symbols=")),
    ({"tasks": [DEFAULT_TRADING_TASK], "symbols": ["SPY"]}, ("symbols", "tasks=")),
    ({"env_spec": EnvSpec(action="continuous"), "long_only": True}, ("long_only", "env_spec=")),
    ({"max_leverage": 0}, ("env.max_leverage",)),
]


@pytest.mark.parametrize(("kwargs", "expected"), PORTFOLIO_ERRORS, ids=lambda v: str(v)[:40])
def test_each_bad_portfolio_keyword_is_a_config_error_naming_it(
    kwargs: dict[str, Any], expected: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as exc:
        gym.make(PORTFOLIO_ID, **kwargs)
    for part in expected:
        assert part in message(exc)


def test_a_bad_render_mode_is_a_config_error_listing_the_modes() -> None:
    for mode in ("human", "rgb", 3):
        with pytest.raises(ConfigError, match="render_mode must be None, 'ansi', 'rgb_array'"):
            TradingEnv.from_bars(random_walk_bars(120), EnvSpec(window=4), render_mode=mode)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gym.make warns of a mode not in metadata first
        with pytest.raises(ConfigError, match="got 'rgb'"):
            gym.make(PORTFOLIO_ID, render_mode="rgb")


# -- rendering -------------------------------------------------------------------------------


@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
@pytest.mark.parametrize("env_id", [TRADING_ID, PORTFOLIO_ID])
def test_check_env_passes_with_every_render_mode(env_id: str, render_mode: str | None) -> None:
    env = gym.make(env_id, start=START, end="2012-02-29", window=4, render_mode=render_mode)
    assert env.metadata == {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # unbounded features, by design
        warnings.filterwarnings("ignore", message=".*symmetric and normalized.*")  # leverage box
        check_env(env.unwrapped)  # renders every mode too, through env.spec.make(render_mode=...)


def test_ansi_is_one_line_of_the_state_with_known_values() -> None:
    env = TradingEnv.from_bars(constant_bars(80), EnvSpec(window=4), render_mode="ansi")
    with pytest.raises(RuntimeError, match="reset"):
        env.render()
    env.reset(seed=0)
    first = env.render()
    assert (
        first
        == "2015-04-01 close asset=50.00 | position +0.000 | equity 100,000.00 | drawdown 0.00%"
    )
    env.step(2)  # to +1: fee + slippage 3 bps of 100,000 = 30
    assert env.render() == (
        "2015-04-02 close asset=50.00 | position +1.000 | equity 99,970.00 | drawdown 0.03%"
    )
    # to -1: 3 bps of 2 * 99,970 = 59.982, borrow 50 bps / 252 of 99,970 = 1.984 -> 99,908.03
    env.step(0)
    assert env.render() == (
        "2015-04-03 close asset=50.00 | position -1.000 | equity 99,908.03 | drawdown 0.09%"
    )
    env.reset(seed=0)
    assert env.render() == first


def test_portfolio_ansi_lists_every_asset() -> None:
    bars = {s: random_walk_bars(150, seed=i) for i, s in enumerate(("A", "B"))}
    env = PortfolioEnv.from_bars(bars, EnvSpec(window=4, action="continuous"), render_mode="ansi")
    env.reset(seed=0)
    *_, info = env.step(np.array([0.25, -0.5], dtype=np.float32))
    text = env.render()
    assert isinstance(text, str)
    assert "\n" not in text
    a, b = info["position"]  # the weights held at the close, after the day's drift
    assert f"| position {a:+.3f} {b:+.3f} |" in text
    assert text.startswith(f"{info['date']} close A=")
    assert f"| equity {info['equity']:,.2f} |" in text


def test_rgb_array_frames_of_a_fresh_reset_and_later_days() -> None:
    env = TradingEnv.from_bars(random_walk_bars(200), EnvSpec(window=4), render_mode="rgb_array")
    env.reset(seed=0)
    fresh = env.render()
    assert isinstance(fresh, np.ndarray)
    assert fresh.shape == (*CHART_SIZE_PX, 3)
    assert fresh.dtype == np.uint8
    assert fresh.min() < 100 < 250 <= fresh.max()  # something is drawn on a light background
    for action in (2, 2, 0, 1, 2):
        env.step(action)
    later = env.render()
    assert isinstance(later, np.ndarray)
    assert later.shape == fresh.shape
    assert (later != fresh).any()
    env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), fresh)  # the chart is redrawn, not accumulated


def test_rendering_reads_no_bar_after_the_last_close_marked() -> None:
    bars = random_walk_bars(200)
    later = bars.index[150:]
    changed = bars.copy()
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.5
    frames = {}
    for name, frame in {"original": bars, "changed": changed}.items():
        for mode in ("ansi", "rgb_array"):
            env = TradingEnv.from_bars(frame, EnvSpec(window=4), render_mode=mode)
            env.reset(seed=0)
            while env._t < 149:
                env.step(2)
            frames[name, mode] = env.render()
    assert frames["original", "ansi"] == frames["changed", "ansi"]
    np.testing.assert_array_equal(frames["original", "rgb_array"], frames["changed", "rgb_array"])


def test_without_a_render_mode_nothing_is_kept_and_render_returns_none() -> None:
    env = TradingEnv.from_bars(random_walk_bars(120), EnvSpec(window=4))
    env.reset(seed=0)
    env.step(2)
    assert env.render_mode is None
    assert env._trace is None
    assert env.render() is None


def test_gym_make_collects_frames_with_rgb_array_list() -> None:
    env = gym.make(
        TRADING_ID, start=START, end="2012-02-29", window=4, render_mode="rgb_array_list"
    )
    env.reset(seed=0)
    env.step(2)
    frames = env.render()
    assert isinstance(frames, list)
    assert [np.shape(f) for f in frames] == [(*CHART_SIZE_PX, 3)] * 2


def test_matplotlib_is_imported_only_by_an_rgb_array_render() -> None:
    out = run_python(
        "import sys\n"
        "import gymnasium as gym\n"
        "import market_metarl\n"
        "env = gym.make('market_metarl/Trading-v0', window=4, render_mode='ansi')\n"
        "env.reset(seed=0)\n"
        "env.step(1)\n"
        "env.render()\n"
        "print('matplotlib' in sys.modules)\n"
        "env = gym.make('market_metarl/Trading-v0', window=4, render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "print('matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
        "env.render()\n"
        "print('matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
    )
    assert out.splitlines() == ["False", "False False", "True False"]
