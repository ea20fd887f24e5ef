"""backtrader and the env books agree on the same target weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_metarl.backtest.bridge import run_backtrader
from market_metarl.backtest.simulate import RECONCILE_TOLERANCE, inv_adv_of, reconcile, simulate
from market_metarl.data.sources import load_bars
from market_metarl.envs.costs import CostModel
from market_metarl.types import ConfigError, CostSpec


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_bars("bundled:GOOG").iloc[-300:]


@pytest.mark.parametrize("kind", ["random", "long", "short", "flip"])
def test_backtrader_reconciles_with_env(goog: pd.DataFrame, kind: str) -> None:
    rng = np.random.default_rng(0)
    days = goog.index[:-1]
    weights = {
        "random": np.clip(rng.normal(0.2, 0.6, len(days)), -1, 1),
        "long": np.ones(len(days)),
        "short": -np.ones(len(days)),
        "flip": np.where(np.arange(len(days)) % 2 == 0, 1.0, -1.0),
    }[kind]
    targets = pd.Series(weights, index=days)
    model = CostModel.from_spec(CostSpec(fee_bps=1.0, slippage_bps=2.0, borrow_bps_annual=50.0))
    bt_run = run_backtrader(goog, targets, model, 100_000.0)
    env = simulate(goog, targets, model, 100_000.0)
    assert bt_run.rejected == 0
    assert reconcile(bt_run.equity, env.equity) < RECONCILE_TOLERANCE
    assert bt_run.equity.index.equals(goog.index)


def test_native_sizing_is_measurably_worse(goog: pd.DataFrame) -> None:
    days = goog.index[:-1]
    targets = pd.Series(np.clip(np.random.default_rng(1).normal(0.3, 0.5, len(days)), -1, 1), days)
    model = CostModel.from_spec(CostSpec())
    native = run_backtrader(goog, targets, model, 100_000.0, sizing="close")
    env = simulate(goog, targets, model, 100_000.0)
    assert reconcile(native.equity, env.equity) > 1e-6


def test_constant_price_loses_exactly_its_costs() -> None:
    """No price moves: equity falls by fee + slippage on each traded notional, plus borrow."""
    index = pd.bdate_range("2020-01-01", periods=6, name="date")
    bars = pd.DataFrame(
        {"open": 50.0, "high": 50.0, "low": 50.0, "close": 50.0, "volume": 1e6}, index=index
    )
    targets = pd.Series([1.0, 1.0, -0.5, 0.0, 0.0], index=index[:-1])
    spec = CostSpec(fee_bps=10.0, slippage_bps=20.0, borrow_bps_annual=252.0)
    model = CostModel.from_spec(spec)
    equity = run_backtrader(bars, targets, model, 1000.0).equity.to_numpy()
    rate, borrow = 30e-4, 1e-4  # per unit traded; per unit short per day
    e1 = 1000.0 * (1 - rate * 1.0)
    e3 = e1 * (1 - rate * 1.5 - borrow * 0.5)
    e4 = e3 * (1 - rate * 0.5)
    np.testing.assert_allclose(equity, [1000.0, e1, e1, e3, e4, e4], rtol=1e-12)


def test_min_fee_and_impact_are_charged(goog: pd.DataFrame) -> None:
    days = goog.index[:-1]
    targets = pd.Series(np.where(np.arange(len(days)) % 5 == 0, 0.5, 0.2), index=days)
    plain = CostModel.from_spec(CostSpec())
    costly = CostModel.from_spec(CostSpec(min_fee=5.0, impact_coef=0.5))
    a = run_backtrader(goog, targets, plain, 10_000.0).equity
    b = run_backtrader(goog, targets, costly, 10_000.0, inv_adv=inv_adv_of(goog)).equity
    assert b.iloc[-1] < a.iloc[-1]


def test_leverage_is_refused(goog: pd.DataFrame) -> None:
    targets = pd.Series(1.5, index=goog.index[:-1])
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        run_backtrader(goog, targets, CostModel.from_spec(CostSpec()), 1000.0)
