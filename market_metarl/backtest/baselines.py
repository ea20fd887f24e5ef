"""Strong simple baselines as pure functions of a close-price series: target weights per day.

Each function maps closes ``close`` (a ``pd.Series`` on a sorted date index) to the target weight
decided after the close of each day: the value on day ``t`` reads ``close`` up to ``t`` only
(pandas rolling and exponentially weighted windows, shifts), is executed at the open of ``t + 1``,
and is 0 while the history it needs is missing. Changing closes after ``t`` leaves every weight up
to ``t`` unchanged (the tests perturb the future to prove it). The backtest runs them through
:class:`~market_metarl.backtest.rules.RuleAgent`; a benchmark can call them directly.

Conventions: daily **log** returns ``log(close_t / close_{t-1})``; the volatility estimate
``sigma_hat_t`` is their sample standard deviation (``ddof=1``) over the last ``window`` returns,
annualised with ``periods_per_year`` (252); weights are fractions of equity, capped at
``max_leverage`` in absolute value.

- :func:`vol_target_weights`: long ``sigma_target / sigma_hat_t``.
- :func:`tsmom_weights`: time-series momentum (Moskowitz, Ooi & Pedersen 2012, "Time series
  momentum", JFE): the sign of the return from ``t - 252`` to ``t - 21`` (12-1 months), times
  the vol-target weight.
- :func:`macd_weights`: the trend signal of Baz, Granger, Harvey, Le Roux & Rattray (2015),
  "Dissecting Investment Strategies in the Cross Section and Time Series" (:func:`macd_signal`),
  times the vol-target weight.

A long-only account clips negative weights to 0 (``long_only=True``: long or flat).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from market_metarl.data.trend import macd_intermediate
from market_metarl.types import TRADING_DAYS_PER_YEAR, ConfigError, DataError

BAZ_PAIRS: tuple[tuple[int, int], ...] = ((8, 24), (16, 48), (32, 96))
"""Baz et al. (2015): the (short, long) time scales of the three MACD signals averaged."""

BAZ_SCALE = 0.89
"""Baz et al. (2015): the response ``phi(y) = y exp(-y^2 / 4) / 0.89`` peaks near 1."""


def _closes(close: pd.Series) -> pd.Series:
    """``close`` as float64, refused when a price is not positive and finite."""
    out = close.astype("float64")
    bad = ~(np.isfinite(out.to_numpy()) & (out.to_numpy() > 0))
    if bad.any():
        where = out.index[np.flatnonzero(bad)[0]]
        raise DataError(f"closes must be positive and finite; {where} has {out.loc[where]!r}")
    return out


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def realised_vol(
    close: pd.Series, window: int = 60, periods_per_year: int = TRADING_DAYS_PER_YEAR
) -> pd.Series:
    """``sigma_hat_t``: annualised std (``ddof=1``) of the last ``window`` daily log returns to ``t``.

    NaN until ``window`` returns exist (the first ``window`` days).
    """
    if window < 2:
        raise ConfigError(f"the volatility window must be >= 2 days, got {window}")
    log_ret = np.log(_closes(close)).diff()
    return log_ret.rolling(window, min_periods=window).std(ddof=1) * math.sqrt(periods_per_year)


def vol_target_weights(
    close: pd.Series, target: float = 0.15, window: int = 60, max_leverage: float = 1.0
) -> pd.Series:
    """Volatility-targeted long: ``min(target / sigma_hat_t, max_leverage)`` (0 without history).

    Args:
        close: Closes on a sorted date index.
        target: Annualised volatility aimed for (0.15 = 15%).
        window: Daily log returns in ``sigma_hat`` (:func:`realised_vol`).
        max_leverage: Largest weight (a zero ``sigma_hat`` gives this).

    Returns:
        The weight decided after each day's close, on ``close``'s index.
    """
    _positive("target", target)
    _positive("max_leverage", max_leverage)
    sigma = realised_vol(close, window).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(sigma > 0, target / sigma, np.inf)
    weights = np.where(np.isnan(sigma), 0.0, np.minimum(raw, max_leverage))
    return pd.Series(weights, index=close.index, name="vol_target")


def _signed(
    signal: pd.Series, scale: pd.Series, long_only: bool, name: str, max_leverage: float
) -> pd.Series:
    """``signal * scale`` (0 where either is missing), clipped to ``[0, L]`` when long-only."""
    w = (signal.fillna(0.0) * scale).to_numpy()
    w = np.clip(w, 0.0 if long_only else -max_leverage, max_leverage)
    return pd.Series(w, index=signal.index, name=name)


def tsmom_signal(close: pd.Series, lookback: int = 252, skip: int = 21) -> pd.Series:
    """Sign (``-1, 0, +1``) of the return from ``t - lookback`` to ``t - skip``; 0 before that."""
    if not 0 <= skip < lookback:
        raise ConfigError(f"tsmom needs 0 <= skip < lookback, got skip={skip}, lookback={lookback}")
    log_close = np.log(_closes(close))
    past = log_close.shift(skip) - log_close.shift(lookback)
    return np.sign(past).fillna(0.0).rename("tsmom_signal")


def tsmom_weights(
    close: pd.Series,
    target: float = 0.15,
    window: int = 60,
    max_leverage: float = 1.0,
    long_only: bool = False,
    lookback: int = 252,
    skip: int = 21,
) -> pd.Series:
    """12-1 month time-series momentum, vol-scaled: ``tsmom_signal * vol_target_weights``.

    Moskowitz, Ooi & Pedersen (2012) scale each asset to a volatility target; here the same
    target and estimate as :func:`vol_target_weights`. Long/short, or long/flat when
    ``long_only``.
    """
    scale = vol_target_weights(close, target, window, max_leverage)
    return _signed(tsmom_signal(close, lookback, skip), scale, long_only, "tsmom", max_leverage)


def baz_response(y: np.ndarray | float) -> np.ndarray:
    """Baz et al.'s response ``phi(y) = y exp(-y^2 / 4) / 0.89``: largest (~0.96) at ``y = sqrt 2``.

    It follows a trend of moderate strength and fades an extreme one.
    """
    y = np.asarray(y, dtype=np.float64)
    return np.asarray(y * np.exp(-(y**2) / 4.0) / BAZ_SCALE)


def macd_signal(
    close: pd.Series,
    pairs: tuple[tuple[int, int], ...] = BAZ_PAIRS,
    price_window: int = 63,
    signal_window: int = 252,
) -> pd.Series:
    """Baz et al. (2015)'s trend signal in ``(-0.97, 0.97)``: the mean of ``phi(y_k)`` over pairs.

    For each ``(S, L)``, ``y`` is :func:`~market_metarl.data.trend.macd_intermediate` (the
    ``macd_S_L`` feature's source): ``x = EWMA_S(close) - EWMA_L(close)`` with decay ``1 / n``,
    ``q = x / std(close over the last price_window days)``,
    ``y = q / std(q over the last signal_window days)``; the signal is the mean of
    :func:`baz_response` ``(y)`` over the pairs. 0 until ``price_window + signal_window - 1`` days
    exist (no back-filling: that would read the future).
    """
    px = _closes(close)
    parts = []
    for short, long in pairs:
        y = macd_intermediate(px, short, long, price_window, signal_window)
        parts.append(baz_response(y.to_numpy()))
    signal = np.mean(parts, axis=0)
    return pd.Series(np.nan_to_num(signal, nan=0.0), index=close.index, name="macd_signal")


def macd_weights(
    close: pd.Series,
    target: float = 0.15,
    window: int = 60,
    max_leverage: float = 1.0,
    long_only: bool = False,
) -> pd.Series:
    """Baz et al.'s trend signal, vol-scaled: ``macd_signal * vol_target_weights``."""
    scale = vol_target_weights(close, target, window, max_leverage)
    return _signed(macd_signal(close), scale, long_only, "macd", max_leverage)
