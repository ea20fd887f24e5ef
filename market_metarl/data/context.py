"""Cross-asset context: what other markets did, as per-day feature columns (off by default).

X-Trend (Wood, Kessler, Roberts & Zohren 2024) lets the agent read recent segments of *other*
assets when it decides on one. Here that idea is a set of causal columns appended to every asset's
feature row: ``[features] context`` names the context assets (source specs, bare symbols resolved
with ``[data] source``, or a preset of :data:`CONTEXT_PRESETS`), and for each decision day ``t``
of the traded asset the columns read the context assets' bars dated ``<= t`` only. The policy then
sees them in its observation window like any other feature, so every learner (MAML, pooled, RL^2,
...) gets them without a change.

Columns, for each context asset ``C`` (its symbol name), in order:

- ``ctx_C_nret_1``, ``ctx_C_nret_5``, ``ctx_C_nret_21``: ``C``'s volatility-normalised log returns
  over 1, 5 and 21 of its own trading days (:func:`~market_metarl.data.trend.normalised_returns`:
  the return over the EWMA volatility, span 60, times ``sqrt(h)``; clipped to ``[-10, 10]``);
- ``ctx_C_volratio``: the std of ``C``'s daily log returns over its last 21 days over their std
  over its last ``context_lookback`` days, clipped to ``[0, 10]`` (1 where the long window is flat);
- ``ctx_C_live``: 1 when ``C`` has a defined value as of ``t``, else 0 (the mask);

then ``ctx_mean_21`` and ``ctx_disp_21``: the mean and the population std (``ddof=0``) of
``ctx_C_nret_21`` over the live context assets (0 with none live; the std is 0 with one).

Timing, as an as-of join: each context asset's columns are computed on its own calendar (trailing
windows only), then the value used on the traded asset's date ``t`` is the row of ``C``'s last bar
dated ``<= t``. So a holiday of the other market (or a day it did not trade) repeats its last
value: forward filled from earlier days, never back filled. The fill stops after
:data:`CONTEXT_MAX_STALE_DAYS` calendar days: a context series that has ended (or a gap that long)
reads as not live. Days before ``C`` exists, or before its own warm-up (:func:`context_warmup`
bars) is complete, read as a clear 0 in every column of ``C`` with ``ctx_C_live = 0``; they are
not refused, since real universes hold assets listed years apart (the training period of
``envs/real.toml`` starts in 2000, its stooq ETFs in 2005). The traded asset may itself be a
context asset: its columns still read bars ``<= t`` only.

Why ``[features]`` and not ``[data]``: the columns are observation features, and
:class:`~market_metarl.data.features.FeatureSpec` travels with the env settings into every path
that builds observations (training pools, gym and vector envs, backtest and paper-trading views),
so a run's policy sees the layout it was trained with wherever it is opened, and the recorded
tasks (``tasks.json``) do not change. An experiment resolves bare symbols with ``[data] source``
and refuses a held-out asset as context (:mod:`~market_metarl.data.context_check`); a config
grid sets a preset (``--grid features.context=macro``), as a grid value cannot be a list.

Context bars are read with :func:`~market_metarl.data.sources.load_bars`; the columns of a
bundled, synthetic or csv context asset are computed once per process (keyed by source spec,
lookback and, for a csv file, its size and modification time), those of a downloaded one at every
use.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from market_metarl.data.trend import NRET_VOL_SPAN, normalised_returns
from market_metarl.data.universe import source_of, symbol_name
from market_metarl.types import ConfigError

CONTEXT_HORIZONS: tuple[int, ...] = (1, 5, 21)
"""Horizons (days of the context asset) of its normalised returns ``ctx_C_nret_h``."""

CONTEXT_SHORT_VOL = 21
"""Days of the short volatility in ``ctx_C_volratio`` (and of the cross-sectional columns)."""

CONTEXT_MIN_LOOKBACK = 2 * CONTEXT_SHORT_VOL
"""Shortest ``context_lookback``: the long volatility spans at least twice the short one."""

DEFAULT_CONTEXT_LOOKBACK = 63
"""Default ``context_lookback`` (a quarter): with it the context warm-up is 63 bars, so
``envs/real.toml``'s ``warmup_days = 100`` covers it with ``env.window`` up to 38."""

CONTEXT_MAX_STALE_DAYS = 10
"""Calendar days a context value is carried forward at most (longer than any exchange closure of
the US data, 6 days in September 2001); older, the asset reads as not live."""

VOLRATIO_CLIP = 10.0
"""``ctx_C_volratio`` is clipped to ``[0, 10]``."""

_STOOQ = "csv:../shared/data/raw/stooq-momentum-invest/us/{}.us.txt"

CONTEXT_PRESETS: dict[str, tuple[str, ...]] = {
    "macro": tuple(_STOOQ.format(s) for s in ("spy", "qqq", "xlf", "ief", "shy", "lqd")),
    "bundled": ("bundled:SPY", "bundled:QQQ", "bundled:IWM", "bundled:EEM", "bundled:USO"),
}
"""Named context lists (``[features] context = "macro"``, or ``--grid features.context=macro``,
since a grid value cannot be a list).

- ``macro``: US equities (SPY, QQQ), financials (XLF), Treasuries (IEF 7-10 years, SHY 1-3 years)
  and investment-grade credit (LQD): the stooq ETFs of ``envs/real.toml`` (``../shared/data/raw``,
  2005 to 2026), none of them held out or excluded there. Before 2005 they read as not live.
- ``bundled``: SPY, QQQ, IWM, EEM and USO shipped in ``data/`` (to 2021-03): offline smoke runs.
"""


def context_sources(context: str | Sequence[str]) -> tuple[str, ...]:
    """The context assets ``context`` names: a preset's source specs, or its entries stripped.

    Bare symbols stay bare here (an experiment resolves them with ``[data] source``, see
    :func:`~market_metarl.data.context_check.resolve_context`; elsewhere they are ``bundled:``).

    Raises:
        ConfigError: An unknown preset, an empty entry, or two entries with one symbol name.
    """
    if isinstance(context, str):
        if context not in CONTEXT_PRESETS:
            raise ConfigError(
                f"features.context {context!r} is not a preset; give one of "
                f"{', '.join(map(repr, CONTEXT_PRESETS))} or a list of symbols/source specs"
            )
        return CONTEXT_PRESETS[context]
    if any(not s.strip() for s in context):
        raise ConfigError(f"features.context has an empty entry: {list(context)}")
    names = [symbol_name(s.strip()) for s in context]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise ConfigError(
            f"features.context names {doubled} more than once (a symbol names its columns); "
            "give each context asset once, or name csv files apart with ?name=NAME"
        )
    return tuple(s.strip() for s in context)


def context_warmup(lookback: int) -> int:
    """Bars of a context asset before its first live value: ``max(60, lookback)``."""
    return max(NRET_VOL_SPAN, lookback)


def context_names(sources: Sequence[str]) -> list[str]:
    """The context columns of ``sources``, in order (see the module docstring)."""
    cols = []
    for source in sources:
        name = symbol_name(source)
        cols += [f"ctx_{name}_nret_{h}" for h in CONTEXT_HORIZONS]
        cols += [f"ctx_{name}_volratio", f"ctx_{name}_live"]
    return [*cols, f"ctx_mean_{CONTEXT_SHORT_VOL}", f"ctx_disp_{CONTEXT_SHORT_VOL}"]


def asset_context(bars: pd.DataFrame, lookback: int) -> pd.DataFrame:
    """One context asset's columns on its own dates (NaN for its first :func:`context_warmup` rows).

    Columns ``nret_1, nret_5, nret_21, volratio`` (see the module docstring); every value at a
    date reads the bars dated ``<= `` it.
    """
    log_close = pd.Series(np.log(bars["close"].to_numpy(dtype=np.float64)), index=bars.index)
    out = normalised_returns(log_close, CONTEXT_HORIZONS)
    ret = log_close.diff()
    short = ret.rolling(CONTEXT_SHORT_VOL, min_periods=CONTEXT_SHORT_VOL).std(ddof=1).to_numpy()
    long = ret.rolling(lookback, min_periods=lookback).std(ddof=1).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(long > 1e-12, short / long, 1.0)
    frame = pd.DataFrame({f"nret_{h}": out[f"nret_{h}"] for h in CONTEXT_HORIZONS})
    frame["volratio"] = np.clip(ratio, 0.0, VOLRATIO_CLIP)
    frame.iloc[: context_warmup(lookback)] = np.nan
    return frame


OwnContext = tuple[np.ndarray, np.ndarray]
"""One context asset's dates (``datetime64[ns]``) and its :func:`asset_context` values (float64)."""


def own_context(frame: pd.DataFrame) -> OwnContext:
    """The arrays of one asset's :func:`asset_context` frame."""
    return frame.index.to_numpy(dtype="datetime64[ns]"), frame.to_numpy(dtype=np.float64)


def context_block(dates: pd.DatetimeIndex, assets: Sequence[OwnContext]) -> np.ndarray:
    """The context columns ``(len(dates), 5 * len(assets) + 2)`` on the traded asset's ``dates``.

    Args:
        dates: Sorted decision dates of the traded asset(s).
        assets: Each context asset's :func:`own_context` arrays, in the order of the columns.

    Returns:
        float32 values, no NaN (not-live assets are zeros, see the module docstring).
    """
    n_cols = len(CONTEXT_HORIZONS) + 2
    out = np.zeros((len(dates), n_cols * len(assets) + 2), dtype=np.float64)
    stamps = dates.to_numpy(dtype="datetime64[ns]")
    nret21 = np.full((len(dates), len(assets)), np.nan)
    for i, (own_dates, values) in enumerate(assets):
        dest = out[:, i * n_cols : (i + 1) * n_cols]
        nret21[:, i] = _as_of(own_dates, values, stamps, dest)
    _cross_section(nret21, out[:, -2:])
    return out.astype(np.float32)


def context_of_bars(dates: pd.Index, bars: Mapping[str, pd.DataFrame], lookback: int) -> np.ndarray:
    """:func:`context_block` of context bars given by symbol name (tests, in-memory data)."""
    assets = [own_context(asset_context(b, lookback)) for b in bars.values()]
    return context_block(pd.DatetimeIndex(dates), assets)


def _as_of(
    own_dates: np.ndarray, values: np.ndarray, stamps: np.ndarray, dest: np.ndarray
) -> np.ndarray:
    """Write one asset's as-of columns (values, then ``live``) into ``dest``; its ``nret_21``.

    Row ``j`` of ``values`` is used on a date when ``own_dates[j]`` is the asset's last date
    ``<=`` it, at most :data:`CONTEXT_MAX_STALE_DAYS` days old, and defined; otherwise the row
    stays zeros.
    """
    j = np.searchsorted(own_dates, stamps, side="right") - 1
    found = j >= 0
    at = np.where(found, j, 0)
    rows = values[at] if len(values) else np.full((len(stamps), values.shape[1]), np.nan)
    age = stamps - own_dates[at] if len(values) else np.zeros(len(stamps), "timedelta64[ns]")
    fresh = found & (age <= np.timedelta64(CONTEXT_MAX_STALE_DAYS, "D"))
    live = fresh & np.isfinite(rows).all(axis=1)
    dest[:, :-1] = np.where(live[:, None], rows, 0.0)
    dest[:, -1] = live
    return np.where(live, rows[:, len(CONTEXT_HORIZONS) - 1], np.nan)


def _cross_section(nret21: np.ndarray, dest: np.ndarray) -> None:
    """Mean and population std of the live assets' ``nret_21`` per row (0 where none is live)."""
    live = np.isfinite(nret21)
    count = live.sum(axis=1)
    filled = np.where(live, nret21, 0.0)
    mean = np.divide(filled.sum(axis=1), count, out=np.zeros(len(count)), where=count > 0)
    dev = np.where(live, nret21 - mean[:, None], 0.0)
    var = np.divide((dev * dev).sum(axis=1), count, out=np.zeros(len(count)), where=count > 0)
    dest[:, 0] = mean
    dest[:, 1] = np.sqrt(var)


def load_context(dates: pd.DatetimeIndex, sources: Sequence[str], lookback: int) -> np.ndarray:
    """:func:`context_block` of the context sources (bars read with ``load_bars``, cached)."""
    specs = [source_of(s, "bundled") for s in sources]
    return context_block(dates, [_own(s, lookback) for s in specs])


def _own(source: str, lookback: int) -> OwnContext:
    """A source's :func:`own_context`: cached for files and shipped data, read afresh otherwise.

    A downloaded source (``yfinance:``) may grow while a paper-trading loop runs, so it is not
    cached here (``load_bars`` keeps its own download cache).
    """
    if source.split(":", 1)[0] in ("bundled", "synthetic", "csv"):
        return _cached_context(source, lookback, _stamp(source))
    from market_metarl.data.sources import load_bars

    return own_context(asset_context(load_bars(source), lookback))


def _stamp(source: str) -> tuple[str, int, int] | None:
    """A csv file's working directory, size and mtime (an edited or other file is read again)."""
    if not source.startswith("csv:"):
        return None
    try:
        st = os.stat(source[4:].partition("?")[0])
    except OSError:
        return None  # load_bars names the missing file
    return (os.getcwd(), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_context(source: str, lookback: int, stamp: tuple[str, int, int] | None) -> OwnContext:
    """:func:`own_context` of a source, computed once per ``(source, lookback, stamp)``."""
    from market_metarl.data.sources import load_bars

    return own_context(asset_context(load_bars(source), lookback))


def check_lookback(lookback: int) -> None:
    """Refuse a ``context_lookback`` below :data:`CONTEXT_MIN_LOOKBACK`."""
    if isinstance(lookback, bool) or lookback < CONTEXT_MIN_LOOKBACK:
        raise ConfigError(
            f"features.context_lookback must be >= {CONTEXT_MIN_LOOKBACK} days (twice the "
            f"{CONTEXT_SHORT_VOL}-day short volatility), got {lookback}"
        )
