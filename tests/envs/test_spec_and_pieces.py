"""Bad settings fail fast naming the field; the action map and rewards give known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from env_bars import random_walk_bars

from market_metarl.config import build
from market_metarl.envs.actions import ActionMap
from market_metarl.envs.rewards import REWARDS, DifferentialSharpe, DrawdownPenalised, make_reward
from market_metarl.envs.spec import EnvSpec, env_spec_from_config
from market_metarl.envs.trading_env import TradingEnv
from market_metarl.types import ConfigError, CostSpec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"reward": "sharp"},
            "env.reward must be one of 'log_return', 'differential_sharpe', "
            "'drawdown_penalised', got 'sharp'",
        ),
        ({"max_leverage": 0.0}, "env.max_leverage must be > 0"),
        ({"max_leverage": -1.0}, "env.max_leverage must be > 0"),
        ({"window": 0}, "env.window must be an integer >= 1"),
        ({"action": "both"}, "env.action must be one of"),
        ({"dsr_eta": 1.0}, "env.dsr_eta must be in (0, 1)"),
        ({"max_drawdown": 0.0}, "env.max_drawdown must be in (0, 1]"),
        ({"ruin_equity": 1.5}, "env.ruin_equity must be in (0, 1)"),
        ({"drawdown_penalty": -1.0}, "env.drawdown_penalty must be >= 0"),
        ({"initial_cash": 0.0}, "env.initial_cash must be > 0"),
        ({"levels": (-1.0,), "long_only": True}, "env.levels"),
    ],
)
def test_bad_env_settings_raise_naming_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        EnvSpec(**kwargs)
    assert message in str(err.value)


def test_bad_settings_from_toml_tables() -> None:
    with pytest.raises(ConfigError, match=r"env\.reward must be one of"):
        build(EnvSpec, {"reward": "sharp"}, "env")
    with pytest.raises(ConfigError, match=r"env\.max_leverag"):
        build(EnvSpec, {"max_leverag": 2.0}, "env")
    with pytest.raises(ConfigError, match=r"features\.vol_window"):
        env_spec_from_config({"env": {}, "features": {"vol_window": 1}})
    spec = env_spec_from_config({"env": {"window": 3, "levels": [0, 1]}, "features": {}})
    assert spec.window == 3 and spec.levels == (0.0, 1.0)


def test_negative_costs_raise() -> None:
    with pytest.raises(ConfigError, match=r"costs\.fee_bps must be a non-negative number"):
        CostSpec(fee_bps=-1.0)
    with pytest.raises(ConfigError, match=r"costs\.borrow_bps_annual"):
        build(CostSpec, {"borrow_bps_annual": -5.0}, "costs")


def test_window_longer_than_the_task_raises() -> None:
    bars = random_walk_bars(200)
    with pytest.raises(ConfigError) as err:
        TradingEnv.from_bars(bars, EnvSpec(window=120), start=bars.index[100], end=bars.index[179])
    assert "env.window=120 is longer than the task's 80 tradable days; use a window <= 80" in str(
        err.value
    )


def test_impact_needs_volume() -> None:
    bars = random_walk_bars(100)
    bars["volume"] = 0.0
    with pytest.raises(ConfigError, match=r"costs\.impact_coef"):
        TradingEnv.from_bars(bars, EnvSpec(window=3), CostSpec(impact_coef=0.1))


def test_action_map() -> None:
    discrete = ActionMap(EnvSpec(levels=(-2.0, -0.5, 0.0, 0.5, 3.0), max_leverage=1.0))
    assert discrete.levels == (-1.0, -0.5, 0.0, 0.5, 1.0)
    long_only = ActionMap(EnvSpec(long_only=True))
    assert long_only.levels == (0.0, 1.0) and long_only.space.n == 2  # type: ignore[attr-defined]
    box = ActionMap(EnvSpec(action="continuous", max_leverage=1.5), n_assets=3)
    w = box.to_weight(np.array([1.5, -1.5, 9.0]))
    assert np.abs(w).sum() == pytest.approx(1.5)
    np.testing.assert_allclose(w, [0.5, -0.5, 0.5])
    np.testing.assert_allclose(box.to_weights(np.array([[1.5, -1.5, 9.0]]))[0], w)
    lo = ActionMap(EnvSpec(action="continuous", long_only=True))
    assert lo.to_weight_scalar(np.array([-0.3])) == 0.0
    with pytest.raises(ConfigError, match="continuous"):
        ActionMap(EnvSpec(action="discrete"), n_assets=2)


def test_reward_registry_and_formulas() -> None:
    assert set(REWARDS) == {"log_return", "differential_sharpe", "drawdown_penalised"}
    assert isinstance(make_reward(EnvSpec(reward="drawdown_penalised")), DrawdownPenalised)
    dd = DrawdownPenalised(2.0)
    assert dd(0.01, 0.05, 0.02) == pytest.approx(0.01 - 2.0 * 0.03)
    assert dd(0.01, 0.01, 0.02) == 0.01  # recovering: no penalty

    dsr = DifferentialSharpe(0.1)
    dsr.reset()
    rets = [0.01, -0.02, 0.015, 0.003]
    a = b = 0.0
    for k, r in enumerate(rets):
        got = dsr(r, 0.0, 0.0)
        expected = 0.0 if k == 0 else (b * (r - a) - 0.5 * a * (r * r - b)) / (b - a * a) ** 1.5
        assert got == pytest.approx(expected, rel=1e-12)
        a, b = a + 0.1 * (r - a), b + 0.1 * (r * r - b)
    batched = DifferentialSharpe(0.1)
    batched.reset(2)
    out = [batched(np.array([r, r]), 0.0, 0.0) for r in rets]
    dsr.reset()
    assert [float(o[1]) for o in out] == pytest.approx([dsr(r, 0.0, 0.0) for r in rets])
    assert math.isfinite(out[-1][0])


def test_too_few_bars_for_the_features_raises_data_error() -> None:
    from market_metarl.types import DataError

    with pytest.raises(DataError, match="features need 60"):
        TradingEnv.from_bars(random_walk_bars(50), EnvSpec())


def test_task_markets_built_from_loaded_bars_equal_fully_validated_ones() -> None:
    """``from_tasks`` skips re-validating slices of bars ``load_bars`` validated: same arrays."""
    from market_metarl.data.features import FeatureSpec
    from market_metarl.data.sources import load_bars, slice_with_warmup
    from market_metarl.envs.market import TaskMarket
    from market_metarl.types import TaskSpec

    source = "bundled:SPY"
    bars = load_bars(source)
    task = TaskSpec(
        source=source,
        symbol="SPY",
        start=bars.index[300].date(),
        end=bars.index[420].date(),
    )
    features = FeatureSpec()
    fast = TaskMarket.from_tasks(task, features, window=5)
    warm = min(5 - 1 + features.warmup, 300)
    frame = slice_with_warmup(bars, task.start, task.end, warm, "spy")
    slow = TaskMarket.from_bars({"SPY": frame}, features, 5, start=task.start, end=task.end)
    for field in ("dates", "opens", "closes", "volumes", "inv_adv", "features"):
        assert np.array_equal(getattr(fast, field), getattr(slow, field)), field
    assert (fast.first, fast.last) == (slow.first, slow.last)
