"""Regime slicing: cut one symbol's bars into labelled, contiguous segments (the meta-RL tasks).

Four methods, one closed registry (:data:`REGIME_METHODS`), one entry point (:func:`slice_regimes`):

- ``window``: fixed-length segments of ``length`` bars.
- ``trend-vol``: per day, the trailing ``lookback``-day return and volatility give a label (causal);
  runs of equal labels become segments.
- ``hmm``: a Gaussian HMM on [daily log return, rolling volatility], decoded with Viterbi.
- ``changepoint``: penalised change-point detection (Pelt, l2 cost) on the same two features.

Every method returns segments that cover the whole series: contiguous, no overlaps, the first starts
at the first bar and the last ends at the last bar, each at least ``min_length`` bars. Shorter runs
are merged away, shortest first, into the neighbour whose mean features (standardised daily log
return and rolling volatility) are closest; an equidistant tie goes to the preceding neighbour.

Every segment is then labelled by the same function, :func:`label_segment`, from a closed
vocabulary (:data:`REGIME_LABELS`): trend (``bull``/``bear``/``sideways``) from the segment's
annualised mean log return against ``trend_threshold`` (default 5 %), volatility
(``calm``/``volatile``) from its annualised volatility against an absolute ``vol_threshold``
(default 20 %). The threshold is absolute rather than relative to the series' median so that a
label means the same thing on every symbol and every date range, and so a segment can be labelled
from its own bars alone; pass ``vol_threshold`` (e.g. 0.35 for single stocks) to shift it.

Hindsight: ``hmm`` (without ``fit_end``), ``changepoint`` and the segment labels use the whole
series, which is fine for defining meta-training tasks; evaluation must fit on the training period
only (``hmm`` with ``fit_end``), and reports must say that regime boundaries are known in hindsight.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.types import TRADING_DAYS_PER_YEAR, ConfigError, DataError, Regime

REGIME_LABELS: tuple[str, ...] = (
    "bull-calm",
    "bull-volatile",
    "bear-calm",
    "bear-volatile",
    "sideways-calm",
    "sideways-volatile",
)
"""The closed vocabulary of regime labels, ``<trend>-<volatility>``."""

TREND_THRESHOLD = 0.05
"""Annualised mean log return below which (in absolute value) a segment is ``sideways``."""

VOL_THRESHOLD = 0.20
"""Annualised volatility of daily log returns above which a segment is ``volatile``."""

LABEL_PARAMS: tuple[str, ...] = ("trend_threshold", "vol_threshold")
"""Labelling parameters every method accepts."""

Segments = list[tuple[int, int]]
"""Half-open row ranges ``[start, stop)`` that tile ``range(n)``."""


# ---------------------------------------------------------------------------------------- labels


def classify(
    ann_return: float,
    ann_vol: float,
    trend_threshold: float = TREND_THRESHOLD,
    vol_threshold: float = VOL_THRESHOLD,
) -> str:
    """Label from an annualised mean log return and an annualised volatility."""
    if ann_return >= trend_threshold:
        trend = "bull"
    elif ann_return <= -trend_threshold:
        trend = "bear"
    else:
        trend = "sideways"
    return f"{trend}-{'volatile' if ann_vol > vol_threshold else 'calm'}"


def label_segment(
    bars_slice: pd.DataFrame,
    trend_threshold: float = TREND_THRESHOLD,
    vol_threshold: float = VOL_THRESHOLD,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> str:
    """Label a span of bars from the close-to-close log returns inside it.

    Args:
        bars_slice: Bars of the segment. Returns are taken between consecutive closes in the slice,
            so include the bar before the segment to count its first day's return
            (:func:`slice_regimes` does).
        trend_threshold: ``|annualised mean log return|`` below this is ``sideways``.
        vol_threshold: Annualised volatility above this is ``volatile``.
        periods_per_year: Bars per year used to annualise (252 for daily equity bars).

    Returns:
        One of :data:`REGIME_LABELS`.

    Raises:
        DataError: If the slice has fewer than 2 bars.
    """
    close = bars_slice["close"].to_numpy(dtype=np.float64)
    if len(close) < 2:
        raise DataError(f"cannot label a segment of {len(close)} bar(s); give at least 2 bars")
    log_ret = np.diff(np.log(close))
    ann_return = float(log_ret.mean()) * periods_per_year
    ann_vol = float(log_ret.std(ddof=1 if len(log_ret) > 1 else 0)) * math.sqrt(periods_per_year)
    return classify(ann_return, ann_vol, trend_threshold, vol_threshold)


# -------------------------------------------------------------------------------- shared helpers


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


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"regimes.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------- methods


def _window_segments(
    bars: pd.DataFrame, *, min_length: int, seed: int, length: int = 126
) -> Segments:
    """Fixed ``length``-bar segments; a remainder shorter than ``min_length`` joins the last one."""
    length = _positive_int("length", length)
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


def _trend_vol_segments(
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
    lookback = _positive_int("lookback", lookback, minimum=2)
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

    n_states = _positive_int("n_states", n_states, minimum=2)
    vol_window = _positive_int("vol_window", vol_window, minimum=2)
    n_iter = _positive_int("n_iter", n_iter)
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


def _hmm_segments(
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


def _changepoint_segments(
    bars: pd.DataFrame, *, min_length: int, seed: int, penalty: float = 3.0, vol_window: int = 20
) -> Segments:
    """Pelt with an l2 cost on standardised [log return, rolling vol]; penalty ``penalty*log(n)``.

    Runs ruptures' ``KernelCPD(kernel="linear")``, the compiled Pelt for the l2 cost (same
    segmentation as ``Pelt(model="l2", jump=1)``, about 100x faster).
    """
    import ruptures

    if isinstance(penalty, bool) or not isinstance(penalty, int | float) or not penalty > 0:
        raise ConfigError(f"regimes.penalty must be a positive number, got {penalty!r}")
    vol_window = _positive_int("vol_window", vol_window, minimum=2)
    features = _standardise(_return_vol_features(bars, vol_window))
    algo = ruptures.KernelCPD(kernel="linear", min_size=min_length, jump=1).fit(features)
    breaks = algo.predict(pen=float(penalty) * math.log(len(bars)))
    ids = np.zeros(len(bars), dtype=np.int64)
    for b in breaks[:-1]:
        ids[b:] += 1
    return merge_short_runs(ids, min_length, features)


SegmentFn = Callable[..., Segments]

REGIME_METHODS: dict[str, SegmentFn] = {
    "window": _window_segments,
    "trend-vol": _trend_vol_segments,
    "hmm": _hmm_segments,
    "changepoint": _changepoint_segments,
}
"""Closed registry: method name -> ``segment(bars, *, min_length, seed, **params) -> Segments``."""


def method_params(method: str) -> tuple[str, ...]:
    """Parameters ``slice_regimes`` accepts for ``method`` (its own plus the labelling ones)."""
    sig = inspect.signature(REGIME_METHODS[method])
    own = [p for p in sig.parameters if p not in ("bars", "min_length", "seed")]
    return tuple(dict.fromkeys([*own, *LABEL_PARAMS]))


# ---------------------------------------------------------------------------------- public entry


def slice_regimes(
    bars: pd.DataFrame,
    method: str,
    symbol: str = "",
    min_length: int = 20,
    seed: int = 0,
    **params: Any,
) -> list[Regime]:
    """Slice a bars frame into labelled regimes that tile it.

    Args:
        bars: A validated bars frame (see :func:`market_metarl.data.bars.validate_bars`).
        method: One of :data:`REGIME_METHODS`.
        symbol: Symbol recorded on each regime.
        min_length: Fewest bars per regime (shorter runs are merged into a neighbour).
        seed: Seed of the fitted methods (``hmm``); same seed, same regimes.
        **params: Method parameters (``method_params(method)`` lists them): ``window``: length;
            ``trend-vol``: lookback; ``hmm``: n_states, fit_end, n_iter, vol_window;
            ``changepoint``: penalty, vol_window; all: trend_threshold, vol_threshold.

    Returns:
        Regimes in date order; both ends inclusive, contiguous, covering every bar.

    Raises:
        ConfigError: On an unknown method or parameter, or an invalid parameter value.
        DataError: If the series has fewer than ``2 * min_length`` rows.
    """
    if method not in REGIME_METHODS:
        raise ConfigError(
            f"unknown regime method {method!r}; valid methods: {', '.join(REGIME_METHODS)}"
        )
    valid = method_params(method)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"regime method {method!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"valid parameters: {', '.join(valid)}"
        )
    min_length = _positive_int("min_length", min_length, minimum=2)
    if "close" not in bars.columns:
        raise DataError("bars have no close column; pass a validated bars frame")
    if len(bars) < 2 * min_length:
        raise DataError(
            f"regimes: the series has {len(bars)} row(s), at least {2 * min_length} needed "
            f"(2 * min_length={min_length}); give a longer series or lower min_length"
        )
    label_kw = {k: params[k] for k in LABEL_PARAMS if k in params}
    for key, value in label_kw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"regimes.{key} must be a non-negative number, got {value!r}")
    seg_kw = {k: v for k, v in params.items() if k not in LABEL_PARAMS}
    if method == "trend-vol":
        seg_kw.update(label_kw)
    segments = REGIME_METHODS[method](bars, min_length=min_length, seed=seed, **seg_kw)
    index = bars.index
    return [
        Regime(
            symbol=symbol,
            start=pd.Timestamp(index[start]),
            end=pd.Timestamp(index[stop - 1]),
            label=label_segment(bars.iloc[max(start - 1, 0) : stop], **label_kw),
            method=method,
        )
        for start, stop in segments
    ]


REGIME_COLUMNS: tuple[str, ...] = ("symbol", "start", "end", "label", "method", "days")


def regimes_to_frame(regimes: list[Regime], bars: pd.DataFrame | None = None) -> pd.DataFrame:
    """Regimes as a frame with columns ``symbol,start,end,label,method,days``.

    ``days`` is the number of bars in the span when ``bars`` is given, else the number of weekdays
    (trading days plus holidays).
    """
    rows = []
    for r in regimes:
        if bars is not None:
            days = int(((bars.index >= r.start) & (bars.index <= r.end)).sum())
        else:
            days = int(np.busday_count(r.start.date(), (r.end + pd.Timedelta(days=1)).date()))
        rows.append({**r.as_row(), "days": days})
    return pd.DataFrame(rows, columns=list(REGIME_COLUMNS))


def regimes_from_frame(frame: pd.DataFrame) -> list[Regime]:
    """Rebuild regimes from :func:`regimes_to_frame` output (``days`` is ignored).

    Raises:
        DataError: On missing columns or unparseable dates.
    """
    missing = [c for c in ("start", "end", "label", "method") if c not in frame.columns]
    if missing:
        raise DataError(
            f"regimes table lacks column(s) {', '.join(missing)} "
            f"(found {', '.join(map(str, frame.columns))}); "
            "expected symbol,start,end,label,method,days"
        )
    try:
        starts = pd.DatetimeIndex(pd.to_datetime(frame["start"]))
        ends = pd.DatetimeIndex(pd.to_datetime(frame["end"]))
    except (ValueError, TypeError) as exc:
        raise DataError(f"regimes table: bad start/end date ({exc}); use YYYY-MM-DD") from None
    if starts.hasnans or ends.hasnans:
        raise DataError("regimes table: empty start/end date; fill or delete those rows")
    symbols = frame["symbol"] if "symbol" in frame.columns else pd.Series("", index=frame.index)
    return [
        Regime(
            symbol="" if pd.isna(sym) else str(sym),
            start=pd.Timestamp(start),
            end=pd.Timestamp(end),
            label=str(label),
            method=str(method),
        )
        for sym, start, end, label, method in zip(
            symbols, starts, ends, frame["label"], frame["method"], strict=True
        )
    ]
