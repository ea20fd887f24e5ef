"""Causal features: every value at date t depends only on bars dated <= t.

All rolling statistics use trailing windows (``min_periods`` = the window), so the first rows are NaN
until enough history exists; :func:`compute_features` drops nothing and reports the warm-up length,
so callers can skip it. Nothing is fitted on the whole series: the volume z-score uses a trailing
window too. A test perturbs every bar after a date and asserts all features before it are
bit-identical.

The daily trend-following features of Deep Momentum Networks and X-Trend (normalised returns,
MACD signals, a change-point score) live in :mod:`market_metarl.data.trend`; they are off by
default. Their warm-ups: ``nret_h`` ``max(h, 60)`` rows, every ``macd_S_L`` 313 rows,
``cp_score``/``cp_loc`` ``changepoint`` rows. :attr:`FeatureSpec.warmup` is the longest of all,
and a config whose ``data.warmup_days`` is shorter than it plus the window is refused when read.

The cross-asset context columns (``[features] context``, off by default) are computed from other
assets' bars in :mod:`market_metarl.data.context`; ``FeatureSpec`` carries their settings so every
path that builds observations (training, gym envs, backtests, paper trading) adds them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_metarl.data.context import (
    DEFAULT_CONTEXT_LOOKBACK,
    check_lookback,
    context_names,
    context_sources,
    context_warmup,
)
from market_metarl.data.trend import (
    CP_MIN_LOOKBACK,
    MACD_WARMUP,
    changepoint_scores,
    macd_features,
    normalised_returns,
    nret_warmup,
)
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class FeatureSpec:
    """Which causal features to compute.

    Attributes:
        vol_window: Trailing days for the rolling volatility of log returns (0 disables it).
        momentum_horizons: Trailing horizons (days) of cumulative log return.
        volume_window: Trailing days for the volume z-score (0 disables it).
        drawdown: Include the log drawdown from the running high.
        return_lags: Extra lagged log returns ``ret_lag1 .. ret_lagN`` (0 for none).
        norm_return_horizons: Horizons ``h`` (days) of ``nret_h``, the h-day log return over the
            EWMA volatility (span 60) times ``sqrt(h)`` (Lim et al. 2019), e.g.
            ``(1, 5, 21, 63, 126, 252)``; warm-up ``max(h, 60)`` rows.
        macd_pairs: ``(short, long)`` time scales of ``macd_S_L``, Baz et al.'s normalised MACD,
            e.g. ``((8, 24), (16, 48), (32, 96))`` (TOML ``[[8, 24], [16, 48]]``); warm-up 313
            rows whatever the pair.
        changepoint: Lookback days of ``cp_score`` and ``cp_loc``, a CUSUM change-point test of
            daily returns (0 disables it, else >= 10); warm-up ``changepoint`` rows.
        context: Cross-asset context (:mod:`~market_metarl.data.context`): the assets whose
            recent returns every feature row also carries (read as of each day, bars ``<= t``),
            as symbols or source specs, or a preset name (``"macro"``); resolved to source specs
            when the spec is built (bare symbols as ``bundled:``; an experiment resolves them with
            ``[data] source`` first). ``[]`` (the default) adds nothing.
        context_lookback: Days of the long volatility in ``ctx_C_volratio`` (>= 42); the context
            warm-up is ``max(60, context_lookback)`` bars.
    """

    vol_window: int = 20
    momentum_horizons: tuple[int, ...] = (5, 20, 60)
    volume_window: int = 20
    drawdown: bool = True
    return_lags: int = 0
    norm_return_horizons: tuple[int, ...] = ()
    macd_pairs: tuple[tuple[int, int], ...] = ()
    changepoint: int = 0
    context: tuple[str, ...] | str = ()
    context_lookback: int = DEFAULT_CONTEXT_LOOKBACK

    def __post_init__(self) -> None:
        """Reject settings that would give no or negative windows, naming the ``features.`` field.

        Also resolves ``context`` to a tuple of source specs (a preset's, see
        :data:`~market_metarl.data.context.CONTEXT_PRESETS`).
        """
        object.__setattr__(self, "context", context_sources(self.context))
        check_lookback(self.context_lookback)
        if self.vol_window == 1 or self.vol_window < 0:
            raise ConfigError(
                f"features.vol_window must be >= 2 (or 0 to disable), got {self.vol_window}"
            )
        if any(h < 1 for h in self.momentum_horizons):
            raise ConfigError(
                f"features.momentum_horizons must be positive, got {self.momentum_horizons}"
            )
        if self.volume_window < 0 or self.return_lags < 0:
            raise ConfigError("features.volume_window and features.return_lags must be >= 0")
        self._check_trend_fields()

    def _check_trend_fields(self) -> None:
        """Reject non-positive or repeated horizons, bad MACD pairs and a too short change window."""
        horizons = self.norm_return_horizons
        if any(h < 1 for h in horizons) or len(set(horizons)) != len(horizons):
            raise ConfigError(
                "features.norm_return_horizons must be distinct positive days, e.g. "
                f"[1, 5, 21, 63, 126, 252], got {list(horizons)}"
            )
        pairs = self.macd_pairs
        bad = [p for p in pairs if len(p) != 2 or not 1 < p[0] < p[1]]
        if bad or len(set(pairs)) != len(pairs):
            raise ConfigError(
                "features.macd_pairs must be distinct [short, long] pairs with 1 < short < long, "
                f"e.g. [[8, 24], [16, 48], [32, 96]], got {[list(p) for p in pairs]}"
            )
        if self.changepoint != 0 and self.changepoint < CP_MIN_LOOKBACK:
            raise ConfigError(
                f"features.changepoint must be 0 (off) or >= {CP_MIN_LOOKBACK} days, "
                f"got {self.changepoint}"
            )

    @property
    def warmup(self) -> int:
        """Rows at the start that are NaN for at least one feature.

        The trend features (``nret_h``, ``macd_S_L``, ``cp_*``) are NaN for exactly their own
        warm-up rows, so with any of them on this is the longest of those when it exceeds the
        classic features' spans.
        """
        spans = [self.vol_window, *self.momentum_horizons, self.volume_window, self.return_lags + 1]
        spans += [nret_warmup(h) for h in self.norm_return_horizons]
        spans += [MACD_WARMUP] if self.macd_pairs else []
        spans.append(self.changepoint)
        spans += [context_warmup(self.context_lookback)] if self.context else []
        return max(spans)

    @property
    def checks_warmup(self) -> bool:
        """Whether ``data.warmup_days`` must cover :attr:`warmup` (a trend feature or context on)."""
        return bool(
            self.norm_return_horizons or self.macd_pairs or self.changepoint or self.context
        )

    def names(self) -> list[str]:
        """Column names of a feature row, in order (``log_ret`` first).

        Those :func:`compute_features` returns, then the cross-asset context columns
        (:func:`~market_metarl.data.context.context_names`) that
        :class:`~market_metarl.envs.market.TaskMarket` appends when ``context`` is set.

        ``vol`` is always a column: with ``vol_window = 0`` it is all NaN (zeros in the
        observation tensors), kept so the observation layout of runs trained that way stays
        what their checkpoints expect.
        """
        cols = ["log_ret", "vol"]
        cols += [f"mom_{h}" for h in self.momentum_horizons]
        if self.drawdown:
            cols.append("drawdown")
        if self.volume_window:
            cols.append("volume_z")
        cols += [f"ret_lag{i}" for i in range(1, self.return_lags + 1)]
        cols += [f"nret_{h}" for h in self.norm_return_horizons]
        cols += [f"macd_{s}_{long}" for s, long in self.macd_pairs]
        cols += ["cp_score", "cp_loc"] if self.changepoint else []
        return cols + (context_names(self.context) if self.context else [])

    @property
    def context_specs(self) -> tuple[str, ...]:
        """The context assets' source specs (``()`` without context)."""
        assert isinstance(self.context, tuple)  # resolved in __post_init__
        return self.context


def compute_features(
    bars: pd.DataFrame, spec: FeatureSpec | None = None, vix: pd.Series | None = None
) -> pd.DataFrame:
    """Causal features of a bars frame, indexed like it.

    Columns (all dimensionless, roughly unit scale so a network can read them raw):
        ``log_ret``: close-to-close log return (0 on the first day);
        ``vol``: trailing std of ``log_ret`` over ``vol_window`` days, annualised by sqrt(252);
        ``mom_h``: trailing ``h``-day log return, divided by ``sqrt(h) * 0.01`` (per-day-1% units);
        ``drawdown``: log(close / running max close) (<= 0);
        ``volume_z``: z-score of log volume against its trailing ``volume_window`` days (0 when
        volume is missing);
        ``ret_lagN``: ``log_ret`` N days earlier;
        ``nret_h``: h-day log return over ``sigma_t * sqrt(h)``, clipped to [-10, 10];
        ``macd_S_L``: Baz et al.'s normalised MACD, clipped to [-10, 10];
        ``cp_score``, ``cp_loc``: change-point evidence in [0, 1] over the trailing
        ``changepoint`` days and where in that window the change most likely is (0 = its
        start, 1 = today); see :mod:`market_metarl.data.trend`;
        ``vix``: VIX close / 100, when ``vix`` is given (aligned as-of, never forward in time).

    Args:
        bars: A validated bars frame.
        spec: Which features; defaults to :class:`FeatureSpec`.
        vix: Optional VIX close series indexed by date.

    Returns:
        A float64 frame with the same index as ``bars``; the first ``spec.warmup`` rows hold NaN.
    """
    spec = spec or FeatureSpec()
    close = bars["close"]
    log_close = np.log(close)
    log_ret = log_close.diff().fillna(0.0)
    out: dict[str, pd.Series] = {"log_ret": log_ret}
    out["vol"] = log_ret.rolling(spec.vol_window, min_periods=spec.vol_window).std(
        ddof=1
    ) * np.sqrt(252.0)
    for h in spec.momentum_horizons:
        out[f"mom_{h}"] = (log_close - log_close.shift(h)) / (np.sqrt(h) * 0.01)
    if spec.drawdown:
        out["drawdown"] = log_close - log_close.cummax()
    if spec.volume_window:
        out["volume_z"] = _volume_z(bars["volume"], spec.volume_window)
    for i in range(1, spec.return_lags + 1):
        out[f"ret_lag{i}"] = log_ret.shift(i)
    out |= normalised_returns(log_close, spec.norm_return_horizons)
    out |= macd_features(close.astype("float64"), spec.macd_pairs)
    if spec.changepoint:
        score, loc = changepoint_scores(log_close.diff().to_numpy(), spec.changepoint)
        out["cp_score"] = pd.Series(score, index=bars.index)
        out["cp_loc"] = pd.Series(loc, index=bars.index)
    frame = pd.DataFrame(out, index=bars.index)
    if vix is not None:
        aligned = vix.sort_index().reindex(bars.index, method="ffill")
        frame["vix"] = aligned / 100.0
    return frame.astype("float64")


def _volume_z(volume: pd.Series, window: int) -> pd.Series:
    if not (volume > 0).any():
        return pd.Series(0.0, index=volume.index)
    log_vol = np.log(volume.where(volume > 0))
    mean = log_vol.rolling(window, min_periods=window).mean()
    std = log_vol.rolling(window, min_periods=window).std(ddof=1)
    z = (log_vol - mean) / std.where(std > 1e-12)
    return z.fillna(0.0).where(mean.notna())


def feature_matrix(
    bars: pd.DataFrame, spec: FeatureSpec | None = None, columns: Sequence[str] | None = None
) -> np.ndarray:
    """Features as a float32 ``(T, F)`` array with NaN warm-up rows replaced by 0."""
    frame = compute_features(bars, spec)
    if columns is not None:
        frame = frame[list(columns)]
    return np.nan_to_num(frame.to_numpy(dtype=np.float32), nan=0.0)
