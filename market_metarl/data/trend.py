"""Daily trend-following features from the literature, all causal (a value at t reads bars <= t).

- :func:`normalised_returns`: the h-day log return over the ex-ante volatility, as the inputs of
  Deep Momentum Networks (Lim, Zohren & Roberts 2019, "Enhancing Time Series Momentum Strategies
  Using Deep Neural Networks"): ``r_{t-h,t} / (sigma_t * sqrt(h))``, ``sigma_t`` the
  exponentially weighted std of daily log returns (span :data:`NRET_VOL_SPAN`, bars <= t).
- :func:`macd_intermediate`: the volatility-normalised MACD of Baz et al. (2015), also an input of
  Lim et al. (2019) and X-Trend; the backtest's MACD baseline is built on it.
- :func:`changepoint_scores`: a cheap, explainable stand-in for X-Trend's Gaussian-process
  change-point detection: two CUSUM tests inside the trailing window (a change in the mean of daily
  log returns, and a change in their scale via absolute deviations), each with the closed-form
  asymptotic null of the supremum of a Brownian bridge (:func:`kolmogorov_sf`), combined with a
  Bonferroni factor 2. The score is ``min(1, -log10(p) / CP_FULL_LOG10)``: 0 without evidence,
  1/3 at p = 0.1, 2/3 at p = 0.01, 1 at p <= 0.001. Under no change p is close to uniform, so the
  score is mostly small (about 0.1 on average; the CUSUM tests are slightly conservative in
  short windows, and fat tails do not inflate them because each statistic is standardised by its
  own window's spread). Vol clustering in real returns is a genuine change in scale and raises it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from market_metarl.types import ConfigError

NRET_VOL_SPAN = 60
"""Span (days) of the EWMA std of daily log returns that normalises ``nret_h`` (Lim et al. 2019)."""

FEATURE_CLIP = 10.0
"""``nret_h`` and ``macd_S_L`` are clipped to ``[-10, 10]``: unit-scale inputs, no blow-ups."""

MACD_PRICE_WINDOW = 63
"""Days of the rolling std of prices that turns the MACD into ``q`` (Baz et al. 2015)."""

MACD_SIGNAL_WINDOW = 252
"""Days of the rolling std of ``q`` that turns it into the signal ``y`` (Baz et al. 2015)."""

MACD_WARMUP = MACD_PRICE_WINDOW + MACD_SIGNAL_WINDOW - 2
"""Leading rows where ``y`` is NaN (313): 63 prices for ``q``, then 252 values of ``q``."""

CP_MIN_LOOKBACK = 10
"""Shortest change-point window (days) that gives the CUSUM tests a meaningful spread."""

CP_FULL_LOG10 = 3.0
"""``cp_score`` reaches 1 at a p-value of ``10**-CP_FULL_LOG10`` (0.001)."""


def nret_warmup(horizon: int) -> int:
    """Leading NaN rows of ``nret_h``: ``h`` for the return, 60 returns for ``sigma_t``."""
    return max(horizon, NRET_VOL_SPAN)


def normalised_returns(log_close: pd.Series, horizons: Sequence[int]) -> dict[str, pd.Series]:
    """``nret_h = (log p_t - log p_{t-h}) / (sigma_t sqrt(h))``, clipped to ``[-10, 10]``.

    ``sigma_t`` is pandas' bias-corrected ``ewm(span=60).std()`` of the daily log returns up to
    ``t`` (at least 60 of them), so ``nret_h`` is NaN for the first ``max(h, 60)`` rows. A flat
    stretch (zero return over zero volatility) gives 0.

    Args:
        log_close: Log closes on a sorted date index.
        horizons: Return horizons ``h`` in days.

    Returns:
        ``{"nret_h": series}`` in the order of ``horizons``.
    """
    ret = log_close.diff()
    sigma = ret.ewm(span=NRET_VOL_SPAN, min_periods=NRET_VOL_SPAN).std().to_numpy()
    out = {}
    for h in horizons:
        num = (log_close - log_close.shift(h)).to_numpy()
        den = sigma * math.sqrt(h)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where((num == 0) & (den == 0), 0.0, num / den)
        out[f"nret_{h}"] = pd.Series(np.clip(z, -FEATURE_CLIP, FEATURE_CLIP), index=log_close.index)
    return out


def macd_intermediate(
    close: pd.Series,
    short: int,
    long: int,
    price_window: int = MACD_PRICE_WINDOW,
    signal_window: int = MACD_SIGNAL_WINDOW,
) -> pd.Series:
    """Baz et al. (2015)'s normalised MACD ``y`` for the time scales ``(short, long)``.

    ``m = EWMA_S(close) - EWMA_L(close)``, where ``EWMA_n`` has decay ``1 / n`` (half-life
    ``log 0.5 / log(1 - 1/n)``; pandas ``ewm(alpha=1/n)`` with adjusted weights from the first
    bar); ``q = m / std(close over the last price_window days)``;
    ``y = q / std(q over the last signal_window days)`` (``ddof=1``). NaN for the first
    ``price_window + signal_window - 2`` rows (313), and wherever a std is 0 or undefined.

    Raises:
        ConfigError: Unless ``1 < short < long``.
    """
    if not 1 < short < long:
        raise ConfigError(f"MACD time scales need 1 < short < long, got ({short}, {long})")
    price_sd = close.rolling(price_window, min_periods=price_window).std(ddof=1)
    macd = close.ewm(alpha=1.0 / short).mean() - close.ewm(alpha=1.0 / long).mean()
    q = macd / price_sd
    return q / q.rolling(signal_window, min_periods=signal_window).std(ddof=1)


def macd_features(close: pd.Series, pairs: Sequence[tuple[int, int]]) -> dict[str, pd.Series]:
    """``macd_S_L``: :func:`macd_intermediate` per pair, clipped to ``[-10, 10]``.

    NaN exactly for the first :data:`MACD_WARMUP` rows; a later undefined value (a flat price
    stretch makes a std 0) becomes 0, i.e. no trend signal, rather than a NaN inside a task.
    """
    out = {}
    warm = np.arange(len(close)) < MACD_WARMUP
    for short, long in pairs:
        y = macd_intermediate(close, short, long).to_numpy()
        y = np.where(warm, np.nan, np.nan_to_num(y, nan=0.0, posinf=np.inf, neginf=-np.inf))
        out[f"macd_{short}_{long}"] = pd.Series(
            np.clip(y, -FEATURE_CLIP, FEATURE_CLIP), index=close.index
        )
    return out


def kolmogorov_sf(x: np.ndarray) -> np.ndarray:
    """``P(sup_u |B(u)| > x)`` for a Brownian bridge ``B`` (the Kolmogorov distribution).

    Two series, each converging fast on its side of ``x = 1``; 1 for ``x <= 0.2`` (true value
    above ``1 - 1e-20``).
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.ones_like(x)
    k = np.arange(1, 9, dtype=np.float64)[:, None]
    big = x >= 1.0
    xb = x[big]
    out[big] = 2.0 * np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k**2 * xb**2), axis=0)
    small = (x > 0.2) & ~big
    xs = x[small]
    terms = np.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * xs**2))
    out[small] = 1.0 - math.sqrt(2 * math.pi) / xs * np.sum(terms, axis=0)
    return np.clip(out, 0.0, 1.0)


def _cusum(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the standardised CUSUM statistic, its arg-max split, and the deviations.

    ``max_k |sum_{i<=k} (x_i - mean)| / (std * sqrt(L))`` over ``k = 1 .. L-1`` (``std`` with
    ``ddof=0``), which tends to the supremum of a Brownian bridge when the row has no change.
    A row without spread (std 0, or below 1e-9 of its mean: rounding) gives 0.
    """
    n = windows.shape[1]
    mean = windows.mean(axis=1, keepdims=True)
    dev = windows - mean
    sd = np.sqrt(np.mean(dev * dev, axis=1))
    path = np.cumsum(dev, axis=1)[:, :-1]
    split = np.abs(path).argmax(axis=1) + 1
    top = np.abs(path[np.arange(len(path)), split - 1])
    flat = sd <= 1e-9 * np.abs(mean[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(flat, 0.0, top / (sd * math.sqrt(n)))
    return stat, split, dev


def changepoint_scores(log_ret: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """``cp_score`` and ``cp_loc`` of each day from the trailing ``lookback`` daily log returns.

    Row ``t`` tests ``log_ret[t - lookback + 1 .. t]`` (see the module docstring for the test).
    ``cp_loc = k / lookback`` where the more significant test splits the window after its first
    ``k`` returns: near 0 for a change at the window's start, near 1 for one just before ``t``.

    Args:
        log_ret: Daily log returns, ``log_ret[0]`` undefined (it is ignored).
        lookback: Window length L (>= :data:`CP_MIN_LOOKBACK`).

    Returns:
        Two float arrays like ``log_ret``, NaN for the first ``lookback`` rows.
    """
    score = np.full(len(log_ret), np.nan)
    loc = np.full(len(log_ret), np.nan)
    if len(log_ret) <= lookback:
        return score, loc
    windows = sliding_window_view(np.asarray(log_ret[1:], dtype=np.float64), lookback)
    stat_mean, k_mean, dev = _cusum(windows)
    stat_scale, k_scale, _ = _cusum(np.abs(dev))
    p_mean, p_scale = kolmogorov_sf(stat_mean), kolmogorov_sf(stat_scale)
    p = np.minimum(1.0, 2.0 * np.minimum(p_mean, p_scale))
    evidence = -np.log10(np.maximum(p, 1e-300)) / CP_FULL_LOG10
    score[lookback:] = np.clip(evidence, 0.0, 1.0) + 0.0  # + 0.0: no -0.0 at p = 1
    loc[lookback:] = np.where(p_mean <= p_scale, k_mean, k_scale) / lookback
    return score, loc
