"""Metrics against empyrical-reloaded and known answers."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest

from market_metarl.backtest import metrics

PPY = 252


@pytest.fixture
def returns() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.normal(0.0004, 0.012, 500) + rng.standard_t(3, 500) * 0.002


def test_metrics_match_empyrical(returns: np.ndarray) -> None:
    rf = 0.0001
    assert metrics.total_return(returns) == pytest.approx(
        empyrical.cum_returns_final(returns), rel=1e-12
    )
    assert metrics.annual_return(returns, PPY) == pytest.approx(
        empyrical.annual_return(returns, annualization=PPY), rel=1e-10
    )
    assert metrics.annual_vol(returns, PPY) == pytest.approx(
        empyrical.annual_volatility(returns, annualization=PPY), rel=1e-10
    )
    assert metrics.sharpe(returns, PPY, rf) == pytest.approx(
        empyrical.sharpe_ratio(returns, risk_free=rf, annualization=PPY), rel=1e-10
    )
    assert metrics.sortino(returns, PPY, rf) == pytest.approx(
        empyrical.sortino_ratio(returns, required_return=rf, annualization=PPY), rel=1e-10
    )
    assert metrics.max_drawdown(returns) == pytest.approx(
        empyrical.max_drawdown(returns), rel=1e-12
    )
    assert metrics.calmar(returns, PPY) == pytest.approx(
        empyrical.calmar_ratio(returns, annualization=PPY), rel=1e-10
    )


def test_drawdown_counts_the_starting_equity() -> None:
    r = np.array([-0.1, 0.05, 0.02, -0.03])
    assert metrics.max_drawdown(r) == pytest.approx(empyrical.max_drawdown(r))
    assert metrics.max_drawdown(r) == pytest.approx(-0.1)


def test_known_answers() -> None:
    assert metrics.hit_rate(np.array([0.01, -0.02, 0.0, 0.03])) == pytest.approx(2 / 3)
    assert metrics.turnover(np.array([0.5, 0.0, 0.5, 0.0]), PPY) == pytest.approx(0.25 * PPY)
    assert metrics.total_return(np.array([0.1, -0.1])) == pytest.approx(-0.01)
    assert metrics.n_days(np.zeros(7)) == 7
    flat = np.zeros(10)
    assert math.isnan(metrics.sharpe(flat, PPY)) and math.isnan(metrics.calmar(flat, PPY))
    assert metrics.max_drawdown(flat) == 0.0
    summary = metrics.summary(np.array([0.01, -0.01, 0.02]), np.array([1.0, 0.0, 0.0]), PPY)
    assert tuple(summary) == metrics.METRIC_NAMES
