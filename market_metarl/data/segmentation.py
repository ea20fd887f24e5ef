"""Segmentation methods: cut one symbol's bars into contiguous row ranges (no labels yet).

Each method is a function ``segment(bars, *, min_length, seed, **params) -> Segments`` that tiles
the series, each segment at least ``min_length`` bars; :mod:`market_metarl.data.regimes` holds the
registry of them and labels the segments.

- :func:`window_segments`: fixed-length segments of ``length`` bars.
- :func:`trend_vol_segments`: per day, the trailing ``lookback``-day return and volatility give a
  label (causal); runs of equal labels become segments.
- :func:`hmm_segments`: a Gaussian HMM on [daily log return, rolling volatility], decoded with
  Viterbi (:func:`fit_hmm` fits it, up to ``fit_end`` only when asked).
- :func:`changepoint_segments`: penalised change-point detection (Pelt, l2 cost) on the same two
  features.

Runs shorter than ``min_length`` are merged away by :func:`merge_short_runs`, shortest first, into
the neighbour whose mean features (standardised daily log return and rolling volatility) are
closest; an equidistant tie goes to the preceding neighbour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.data.regime_labels import TREND_THRESHOLD, VOL_THRESHOLD, classify
from market_metarl.types import TRADING_DAYS_PER_YEAR, ConfigError, DataError

Segments = list[tuple[int, int]]
"""Half-open row ranges ``[start, stop)`` that tile ``range(n)``."""


def _log_returns(bars: pd.DataFrame) -> np.ndarray:
    """Close-to-close log returns, 0 on the first bar."""
    log_close = np.log(bars["close"].to_numpy(dtype=np.float64))
    return np.concatenate([[0.0], np.diff(log_close)])


def _return_vol_features(bars: pd.DataFrame, vol_window: int) -> np.ndarray:
    """``(n, 2)`` [daily log return, trailing annualised vol], the vol's warm-up rows backfilled.

    The rolling vol starts at row ``vol_window`` (the first return is not a real one); the rows
    before take that first value, so they look like the first full window (a mild lookahead inside
    the first ``vol_window`` bars, never past the data a fit is given).
    """
    log_ret = _log_returns(bars)
    if len(log_ret) <= vol_window:
        raise DataError(
            f"{len(log_ret)} row(s) is too short for a {vol_window}-day rolling vol; give at least "
            f"{vol_window + 1} rows or lower vol_window"
        )
    vol = pd.Series(log_ret[1:]).rolling(vol_window, min_periods=vol_window).std(ddof=1)
    vol_arr = np.concatenate([[np.nan], vol.to_numpy()]) * math.sqrt(TRADING_DAYS_PER_YEAR)
    vol_arr[:vol_window] = vol_arr[vol_window]
    return np.column_stack([log_ret, vol_arr])


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit std (constant columns are only centred)."""
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)


def _runs(keys: np.ndarray) -> tuple[list[int], list[Any]]:
    """Starts and keys of the runs of equal consecutive values."""
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = [0, *change.tolist()]
    return starts, [keys[s] for s in starts]


def merge_short_runs(keys: np.ndarray, min_length: int, features: np.ndarray) -> Segments:
    """Turn per-bar keys into segments of at least ``min_length`` bars.

    Runs of equal consecutive keys are segments. While one is shorter than ``min_length``, the
    shortest (earliest on ties) takes the key of the neighbour whose mean ``features`` row is
    closest (the preceding one on ties), and equal neighbours coalesce. Give every run a distinct
    key (e.g. a segment id) to merge segments without coalescing.

    Args:
        keys: Length-``n`` array of run keys (a state, a label, or a segment id).
        min_length: Fewest bars per segment; ``n`` must be at least this.
        features: ``(n, d)`` array the similarity is measured on.

    Returns:
        Half-open ranges ``[start, stop)`` tiling ``range(n)``.
    """
    n = len(keys)
    csum = np.vstack([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0)])
    starts, run_keys = _runs(np.asarray(keys))
    while True:
        bounds = [*starts, n]
        lengths = np.diff(bounds)
        if len(starts) == 1 or lengths.min() >= min_length:
            return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]
        i = int(np.argmin(lengths))
        candidates = [j for j in (i - 1, i + 1) if 0 <= j < len(starts)]

        def mean(k: int, b: list[int] = bounds) -> np.ndarray:
            return (csum[b[k + 1]] - csum[b[k]]) / (b[k + 1] - b[k])

        j = min(candidates, key=lambda k: float(np.linalg.norm(mean(k) - mean(i))))
        run_keys[i] = run_keys[j]
        keep = [0] + [k for k in range(1, len(starts)) if run_keys[k] != run_keys[k - 1]]
        starts = [starts[k] for k in keep]
        run_keys = [run_keys[k] for k in keep]


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (never a bool), else a ConfigError.

    ``name`` is the parameter's name under ``regimes.`` in the message.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"regimes.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def window_segments(
    bars: pd.DataFrame, *, min_length: int, seed: int, length: int = 126
) -> Segments:
    """Fixed ``length``-bar segments; a remainder shorter than ``min_length`` joins the last one."""
    length = positive_int("length", length)
    if length < min_length:
        raise ConfigError(
            f"regimes.length ({length}) is below min_length ({min_length}); raise length or "
            "lower min_length"
        )
    n = len(bars)
    starts = list(range(0, n, length))
    if len(starts) > 1 and n - starts[-1] < min_length:
        starts.pop()
    bounds = [*starts, n]
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def trend_vol_segments(
    bars: pd.DataFrame,
    *,
    min_length: int,
    seed: int,
    lookback: int = 63,
    trend_threshold: float = TREND_THRESHOLD,
    vol_threshold: float = VOL_THRESHOLD,
) -> Segments:
    """Causal per-day labels from the trailing ``lookback``-day return and vol; runs -> segments.

    The first ``lookback`` bars have no full trailing window: they take the first computed label.
    """
    lookback = positive_int("lookback", lookback, minimum=2)
    log_ret = pd.Series(_log_returns(bars))
    log_close = np.log(bars["close"].to_numpy(dtype=np.float64))
    n = len(log_close)
    if n <= lookback:
        raise DataError(
            f"trend-vol needs more than lookback={lookback} rows, got {n}; lower lookback or give "
            "a longer series"
        )
    ann_ret = np.full(n, np.nan)
    ann_ret[lookback:] = (log_close[lookback:] - log_close[:-lookback]) / lookback
    ann_ret *= TRADING_DAYS_PER_YEAR
    ann_vol = log_ret.rolling(lookback, min_periods=lookback).std(ddof=1).to_numpy(copy=True)
    ann_vol *= math.sqrt(TRADING_DAYS_PER_YEAR)
    labels = np.array(
        [
            classify(r, v, trend_threshold, vol_threshold)
            for r, v in zip(ann_ret, ann_vol, strict=True)
        ]
    )
    labels[:lookback] = labels[lookback]
    features = _standardise(_return_vol_features(bars, min(lookback, 20)))
    return merge_short_runs(labels, min_length, features)


@dataclass
class HMMFit:
    """A Gaussian HMM fitted on standardised [daily log return, rolling vol].

    Attributes:
        model: The fitted ``hmmlearn.hmm.GaussianHMM``.
        mean: Feature means of the fit rows (the scaler).
        std: Feature standard deviations of the fit rows.
        fit_rows: How many leading bars the model was fitted on.
        vol_window: Trailing days of the rolling vol feature.
    """

    model: Any
    mean: np.ndarray
    std: np.ndarray
    fit_rows: int
    vol_window: int

    def features(self, bars: pd.DataFrame) -> np.ndarray:
        """Standardised features of ``bars`` with the fit rows' scaler."""
        return (_return_vol_features(bars, self.vol_window) - self.mean) / self.std

    def decode(self, bars: pd.DataFrame) -> np.ndarray:
        """Most likely state per bar (Viterbi; uses the whole series, so not causal)."""
        return np.asarray(self.model.predict(self.features(bars)))


def fit_hmm(
    bars: pd.DataFrame,
    n_states: int = 3,
    seed: int = 0,
    fit_end: Any = None,
    n_iter: int = 100,
    vol_window: int = 20,
) -> HMMFit:
    """Fit a diagonal-covariance Gaussian HMM on bars dated up to ``fit_end`` (all when None).

    Features are [daily log return, trailing ``vol_window``-day annualised vol], standardised with
    the fit rows only, so bars after ``fit_end`` never influence the fitted parameters.

    Raises:
        DataError: If ``fit_end`` leaves too few rows to fit.
    """
    from hmmlearn.hmm import GaussianHMM
    from threadpoolctl import threadpool_limits

    n_states = positive_int("n_states", n_states, minimum=2)
    vol_window = positive_int("vol_window", vol_window, minimum=2)
    n_iter = positive_int("n_iter", n_iter)
    n_fit = len(bars)
    if fit_end is not None:
        try:
            cut = pd.Timestamp(fit_end)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"regimes.fit_end must be a date, got {fit_end!r} ({exc})") from None
        n_fit = int(bars.index.searchsorted(cut, side="right"))
    needed = max(vol_window + 1, 10 * n_states)
    if n_fit < needed:
        raise DataError(
            f"hmm: {n_fit} bar(s) up to fit_end={fit_end}, at least {needed} needed to fit "
            f"{n_states} states; move fit_end later"
        )
    raw = _return_vol_features(bars.iloc[:n_fit], vol_window)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    if len(np.unique(raw, axis=0)) < 2 * n_states:
        raise DataError(
            f"hmm: the {n_fit} fit bar(s) barely move (constant prices?); there is nothing to fit "
            f"{n_states} states on; use another method or a series that varies"
        )
    model = GaussianHMM(
        n_components=n_states, covariance_type="diag", n_iter=n_iter, random_state=seed
    )
    # (n, 2) features gain nothing from BLAS/OpenMP threads, and on a busy machine those threads
    # (k-means init) made the fit 20x slower: keep this call single-threaded.
    with threadpool_limits(limits=1):
        model.fit((raw - mean) / std)
    return HMMFit(model=model, mean=mean, std=std, fit_rows=n_fit, vol_window=vol_window)


def hmm_segments(
    bars: pd.DataFrame,
    *,
    min_length: int,
    seed: int,
    n_states: int = 3,
    fit_end: Any = None,
    n_iter: int = 100,
    vol_window: int = 20,
) -> Segments:
    """Fit (up to ``fit_end``), Viterbi-decode the whole series, merge runs under ``min_length``."""
    fit = fit_hmm(bars, n_states, seed, fit_end, n_iter, vol_window)
    features = fit.features(bars)
    states = fit.decode(bars)
    return merge_short_runs(states, min_length, features)


def changepoint_segments(
    bars: pd.DataFrame, *, min_length: int, seed: int, penalty: float = 3.0, vol_window: int = 20
) -> Segments:
    """Pelt with an l2 cost on standardised [log return, rolling vol]; penalty ``penalty*log(n)``.

    Runs ruptures' ``KernelCPD(kernel="linear")``, the compiled Pelt for the l2 cost (same
    segmentation as ``Pelt(model="l2", jump=1)``, about 100x faster).
    """
    import ruptures

    if isinstance(penalty, bool) or not isinstance(penalty, int | float) or not penalty > 0:
        raise ConfigError(f"regimes.penalty must be a positive number, got {penalty!r}")
    vol_window = positive_int("vol_window", vol_window, minimum=2)
    features = _standardise(_return_vol_features(bars, vol_window))
    algo = ruptures.KernelCPD(kernel="linear", min_size=min_length, jump=1).fit(features)
    breaks = algo.predict(pen=float(penalty) * math.log(len(bars)))
    ids = np.zeros(len(bars), dtype=np.int64)
    for b in breaks[:-1]:
        ids[b:] += 1
    return merge_short_runs(ids, min_length, features)
