"""Cross-asset context columns: known answers, the as-of join (fill, mask, staleness), causality.

The same checks through a config, a trained run and the agent's action are in
``tests/meta/test_context_config.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from market_metarl.config import build, to_table
from market_metarl.data.context import (
    CONTEXT_MAX_STALE_DAYS,
    CONTEXT_PRESETS,
    asset_context,
    context_names,
    context_of_bars,
    context_warmup,
)
from market_metarl.data.features import FeatureSpec
from market_metarl.data.trend import FEATURE_CLIP, NRET_VOL_SPAN
from market_metarl.types import ConfigError

LOOKBACK = 63
COLS = 5  # nret_1, nret_5, nret_21, volratio, live


def bars_of(log_close: np.ndarray, start: str = "2000-01-03") -> pd.DataFrame:
    """Bars on business days whose closes are ``100 exp(log_close)``."""
    close = 100.0 * np.exp(log_close)
    dates = pd.bdate_range(start, periods=len(close), name="date")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=dates
    )


def walk(seed: int, n: int = 400, start: str = "2000-01-03") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return bars_of(np.cumsum(rng.normal(0.0003, 0.012, n)), start)


def ewm_std(x: np.ndarray, span: int) -> float:
    """Bias-corrected exponentially weighted std of ``x`` (oldest first), written out."""
    alpha = 2.0 / (span + 1.0)
    w = (1.0 - alpha) ** np.arange(len(x))[::-1]
    v1, v2 = w.sum(), (w * w).sum()
    mean = (w * x).sum() / v1
    biased = (w * (x - mean) ** 2).sum() / v1
    return math.sqrt(biased * v1 * v1 / (v1 * v1 - v2))


def test_a_constant_one_percent_a_day_gives_the_known_values() -> None:
    up = bars_of(np.log(1.01) * np.arange(200))
    down = bars_of(-np.log(1.01) * np.arange(200))
    dates = up.index
    block = context_of_bars(dates, {"UP": up, "DOWN": down}, LOOKBACK)
    warm = context_warmup(LOOKBACK)
    assert warm == 63 and block.shape == (200, 2 * COLS + 2)
    # zero volatility: every normalised return is the clip (+10 up, -10 down); a flat long
    # volatility gives a ratio of 1; the cross-section of +10 and -10 has mean 0, dispersion 10
    np.testing.assert_array_equal(block[warm:, :COLS], [[10.0, 10.0, 10.0, 1.0, 1.0]] * 137)
    np.testing.assert_array_equal(block[warm:, COLS : 2 * COLS], [[-10, -10, -10, 1, 1]] * 137)
    np.testing.assert_array_equal(block[warm:, -2:], [[0.0, 10.0]] * 137)
    # before the warm-up: a clear zero in every column, mask 0, and no cross-section
    assert not block[:warm].any()
    only_up = context_of_bars(dates, {"UP": up}, LOOKBACK)
    np.testing.assert_array_equal(only_up[warm:, -2:], [[FEATURE_CLIP, 0.0]] * 137)


def test_normalised_returns_and_the_vol_ratio_match_a_written_out_computation() -> None:
    bars = walk(1)
    ret = np.diff(np.log(bars["close"].to_numpy()))
    own = asset_context(bars, LOOKBACK)
    for t in (63, 150, 399):
        r = ret[:t]  # returns of rows 1..t
        sigma = ewm_std(r, NRET_VOL_SPAN)
        for h in (1, 5, 21):
            want = np.clip(r[-h:].sum() / (sigma * math.sqrt(h)), -10, 10)
            assert own[f"nret_{h}"].iloc[t] == pytest.approx(want, rel=1e-9)
        ratio = np.std(r[-21:], ddof=1) / np.std(r[-LOOKBACK:], ddof=1)
        assert own["volratio"].iloc[t] == pytest.approx(ratio, rel=1e-9)
    assert own.iloc[:63].isna().all().all() and own.iloc[63:].notna().all().all()


def test_missing_days_are_filled_forward_only_and_a_late_or_ended_asset_is_masked() -> None:
    target = walk(2, 300)
    dates = target.index
    ctx = walk(3, 300)
    holes = dates[[100, 101, 150]]
    late = walk(4, 180, start=str(dates[120].date()))  # rows 120..299
    ended = walk(5, 200)
    frames = {"CTX": ctx.drop(holes), "LATE": late, "ENDED": ended}
    block = context_of_bars(dates, frames, LOOKBACK)
    own = asset_context(ctx.drop(holes), LOOKBACK).to_numpy()
    by_date = pd.DataFrame(own, index=ctx.drop(holes).index)
    # a holiday of the context market repeats its previous day, never the next one
    for row in (100, 101):
        np.testing.assert_allclose(block[row, :4], by_date.loc[dates[99]], rtol=1e-6)
    np.testing.assert_allclose(block[150, :4], by_date.loc[dates[149]], rtol=1e-6)
    assert block[100:102, 4].tolist() == [1.0, 1.0]
    # LATE exists from row 120: zeros and mask 0 until its own warm-up is over
    live_late = block[:, 2 * COLS - 1]
    assert not block[:183, COLS : 2 * COLS].any() and live_late[183:].all()
    # ENDED stops at row 199: carried forward for CONTEXT_MAX_STALE_DAYS, then masked
    gap = (dates - dates[199]).days
    live_ended = block[:, 3 * COLS - 1]
    np.testing.assert_array_equal(live_ended[199:], gap[199:] <= CONTEXT_MAX_STALE_DAYS)
    assert not block[gap > CONTEXT_MAX_STALE_DAYS, 2 * COLS : 3 * COLS].any()
    # the cross-section averages the live assets' nret_21 only
    row = 250  # CTX and LATE live, ENDED masked
    pair = block[row, [2, COLS + 2]].astype(np.float64)
    assert block[row, -2] == pytest.approx(pair.mean(), abs=1e-6)
    assert block[row, -1] == pytest.approx(pair.std(), abs=1e-6)


def perturbed_after(bars: pd.DataFrame, day: pd.Timestamp, seed: int) -> pd.DataFrame:
    """``bars`` with prices after ``day`` scaled by noise, some later days dropped, one added."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    after = out.index > day
    noise = np.exp(rng.normal(0, 0.05, after.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[after, col] = out.loc[after, col].to_numpy() * noise
    out = out.drop(out.index[after][[0, 3, 7]])
    extra = out.iloc[[-1]].copy()
    extra.index = pd.DatetimeIndex([out.index[-1] + pd.Timedelta(days=1)], name="date")
    return pd.concat([out, extra])


def test_the_context_of_a_day_ignores_every_later_bar_of_the_context_assets() -> None:
    target = walk(6, 300)
    dates = target.index
    frames = {"A": walk(7, 320), "B": walk(8, 290)}
    day = dates[200]
    base = context_of_bars(dates, frames, LOOKBACK)
    later = {k: perturbed_after(v, day, i) for i, (k, v) in enumerate(frames.items())}
    again = context_of_bars(dates, later, LOOKBACK)
    assert np.array_equal(base[:201], again[:201])  # bit for bit up to and including day
    assert not np.array_equal(base[201:], again[201:])  # the test can see a change
    earlier = dict(frames)
    earlier["A"] = frames["A"].copy()
    earlier["A"].loc[dates[198], "close"] *= 1.03
    before = context_of_bars(dates, earlier, LOOKBACK)
    assert not np.array_equal(base[200], before[200])


def test_feature_spec_lists_the_context_columns_and_validates_them() -> None:
    spec = FeatureSpec(context=("SPY", "csv:x/qqq.us.txt"), context_lookback=126)
    names = spec.names()
    assert names[-12:] == [
        *(f"ctx_SPY_{c}" for c in ("nret_1", "nret_5", "nret_21", "volratio", "live")),
        *(f"ctx_QQQ_{c}" for c in ("nret_1", "nret_5", "nret_21", "volratio", "live")),
        "ctx_mean_21",
        "ctx_disp_21",
    ]
    assert names[:-12] == FeatureSpec().names()
    assert spec.warmup == 126 and FeatureSpec(context=("SPY",)).warmup == 63
    assert spec.checks_warmup and not FeatureSpec().checks_warmup
    assert context_names(spec.context_specs) == names[-12:]
    assert FeatureSpec(context="macro").context == CONTEXT_PRESETS["macro"]
    table = to_table(spec)
    assert build(FeatureSpec, table, "features") == spec
    assert build(FeatureSpec, {"context": "bundled"}, "features").context_specs[0] == "bundled:SPY"
    with pytest.raises(ConfigError, match="not a preset"):
        FeatureSpec(context="makro")
    with pytest.raises(ConfigError, match=r"names \['SPY'\] more than once"):
        FeatureSpec(context=("SPY", "bundled:SPY"))
    with pytest.raises(ConfigError, match="context_lookback must be >= 42"):
        FeatureSpec(context=("SPY",), context_lookback=21)
