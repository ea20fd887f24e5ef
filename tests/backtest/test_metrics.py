"""Metrics against empyrical-reloaded and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from market_metarl.backtest import metrics as M

empyrical = pytest.importorskip("empyrical")

PPY = 252


@pytest.fixture
def returns() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.normal(0.0004, 0.012, 500) + rng.standard_t(3, 500) * 0.002


def test_metrics_match_empyrical(returns: np.ndarray) -> None:
    rf = 0.0001
    assert M.total_return(returns) == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-12)
    assert M.annual_return(returns, PPY) == pytest.approx(
        empyrical.annual_return(returns, annualization=PPY), rel=1e-10
    )
    assert M.annual_vol(returns, PPY) == pytest.approx(
        empyrical.annual_volatility(returns, annualization=PPY), rel=1e-10
    )
    assert M.sharpe(returns, PPY, rf) == pytest.approx(
        empyrical.sharpe_ratio(returns, risk_free=rf, annualization=PPY), rel=1e-10
    )
    assert M.sortino(returns, PPY, rf) == pytest.approx(
        empyrical.sortino_ratio(returns, required_return=rf, annualization=PPY), rel=1e-10
    )
    assert M.max_drawdown(returns) == pytest.approx(empyrical.max_drawdown(returns), rel=1e-12)
    assert M.calmar(returns, PPY) == pytest.approx(
        empyrical.calmar_ratio(returns, annualization=PPY), rel=1e-10
    )


def test_drawdown_counts_the_starting_equity() -> None:
    r = np.array([-0.1, 0.05, 0.02, -0.03])
    assert M.max_drawdown(r) == pytest.approx(empyrical.max_drawdown(r))
    assert M.max_drawdown(r) == pytest.approx(-0.1)


def test_known_answers() -> None:
    assert M.hit_rate(np.array([0.01, -0.02, 0.0, 0.03])) == pytest.approx(2 / 3)
    assert M.turnover(np.array([0.5, 0.0, 0.5, 0.0]), PPY) == pytest.approx(0.25 * PPY)
    assert M.total_return(np.array([0.1, -0.1])) == pytest.approx(-0.01)
    assert M.n_days(np.zeros(7)) == 7
    flat = np.zeros(10)
    assert math.isnan(M.sharpe(flat, PPY)) and math.isnan(M.calmar(flat, PPY))
    assert M.max_drawdown(flat) == 0.0
    summary = M.summary(np.array([0.01, -0.01, 0.02]), np.array([1.0, 0.0, 0.0]), PPY)
    assert tuple(summary) == M.METRIC_NAMES
