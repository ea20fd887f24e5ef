"""Performance metrics: plain functions of daily returns, each stating its convention.

Conventions (the same as empyrical's, which the tests cross-check):

- ``returns`` are **simple** per-period returns ``r_t = E_t / E_{t-1} - 1`` (not log returns);
- ``periods_per_year`` is always an argument (252 for US daily bars:
  :data:`market_metarl.types.TRADING_DAYS_PER_YEAR`);
- ``risk_free`` is a **per-period** simple rate subtracted from every return (default 0);
- volatility is the sample standard deviation (``ddof=1``), annualised by ``sqrt(periods_per_year)``;
- drawdowns are negative fractions of the running peak of equity, the starting equity counting
  as the first peak;
- undefined values (no days, zero volatility, no drawdown for Calmar) are ``nan``.

:func:`sharpe` is :func:`market_metarl.stats.sharpe` (the one Sharpe ratio, shared with the
sweep's scores), re-exported here with the other figures.
"""

from __future__ import annotations

import math

import numpy as np

from market_metarl.stats import sharpe

METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "annual_return",
    "annual_vol",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "hit_rate",
    "n_days",
)
"""Per-strategy figures of ``metrics.json``, in order."""


def _arr(returns: np.ndarray) -> np.ndarray:
    return np.asarray(returns, dtype=np.float64).reshape(-1)


def simple_returns(equity: np.ndarray) -> np.ndarray:
    """Simple returns ``E_t / E_{t-1} - 1`` of an equity curve (one fewer than its points)."""
    e = _arr(equity)
    return e[1:] / e[:-1] - 1.0


def n_days(returns: np.ndarray) -> int:
    """Number of periods."""
    return len(_arr(returns))


def total_return(returns: np.ndarray) -> float:
    """Compounded return over the window: ``prod(1 + r) - 1`` (0 for no days)."""
    r = _arr(returns)
    return float(np.prod(1.0 + r) - 1.0)


def annual_return(returns: np.ndarray, periods_per_year: int) -> float:
    """Compound annual growth rate: ``(1 + total_return) ** (periods_per_year / n) - 1``."""
    r = _arr(returns)
    if len(r) == 0:
        return math.nan
    growth = 1.0 + total_return(r)
    if growth <= 0:
        return -1.0
    return float(growth ** (periods_per_year / len(r)) - 1.0)


def annual_vol(returns: np.ndarray, periods_per_year: int) -> float:
    """Sample standard deviation (ddof=1) of the returns times ``sqrt(periods_per_year)``."""
    r = _arr(returns)
    if len(r) < 2:
        return math.nan
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def sortino(returns: np.ndarray, periods_per_year: int, required_return: float = 0.0) -> float:
    """Annualised Sortino ratio, empyrical's convention.

    ``mean(r - req) * ppy / downside``, where ``downside = sqrt(mean(min(r - req, 0)^2) * ppy)``
    (the mean is over every period, not only the losing ones).
    """
    excess = _arr(returns) - required_return
    if len(excess) < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)) * periods_per_year)
    if downside < 1e-15:
        return math.nan
    return float(np.mean(excess) * periods_per_year / downside)


def drawdowns(returns: np.ndarray) -> np.ndarray:
    """Drawdown after each period, ``E_t / max(E_0..E_t) - 1`` (<= 0), starting equity included."""
    r = _arr(returns)
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    peak = np.maximum.accumulate(equity)
    return (equity / peak - 1.0)[1:]


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough loss as a negative fraction (0 if equity never falls)."""
    dd = drawdowns(returns)
    return float(dd.min()) if len(dd) else 0.0


def calmar(returns: np.ndarray, periods_per_year: int) -> float:
    """Annual return over the absolute max drawdown (``nan`` without a drawdown)."""
    mdd = max_drawdown(returns)
    if mdd >= 0:
        return math.nan
    return annual_return(returns, periods_per_year) / abs(mdd)


def turnover(traded: np.ndarray, periods_per_year: int) -> float:
    """Annualised one-way turnover: mean traded weight per period times ``periods_per_year``.

    Args:
        traded: Traded weight of each period, ``sum_i |w_i - u_i|`` (``u``: the weights just
            before the trade, after the overnight drift), as a fraction of equity.
        periods_per_year: Periods in a year.
    """
    t = _arr(traded)
    if len(t) == 0:
        return math.nan
    return float(np.mean(t) * periods_per_year)


def hit_rate(returns: np.ndarray) -> float:
    """Share of periods with a positive return among those with a non-zero return (``nan`` if none).

    Flat periods (no position, no cost) are neither hits nor misses.
    """
    r = _arr(returns)
    moved = r[r != 0]
    if len(moved) == 0:
        return math.nan
    return float(np.mean(moved > 0))


def summary(
    returns: np.ndarray, traded: np.ndarray, periods_per_year: int, risk_free: float = 0.0
) -> dict[str, float]:
    """Every figure of :data:`METRIC_NAMES` for one strategy's daily returns."""
    return {
        "total_return": total_return(returns),
        "annual_return": annual_return(returns, periods_per_year),
        "annual_vol": annual_vol(returns, periods_per_year),
        "sharpe": sharpe(returns, periods_per_year, risk_free),
        "sortino": sortino(returns, periods_per_year, risk_free),
        "max_drawdown": max_drawdown(returns),
        "calmar": calmar(returns, periods_per_year),
        "turnover": turnover(traded, periods_per_year),
        "hit_rate": hit_rate(returns),
        "n_days": float(n_days(returns)),
    }
