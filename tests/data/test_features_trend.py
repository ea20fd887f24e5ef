"""The daily trend features (nret, MACD, change point): known answers, exact warm-ups, the TOML keys.

Causality (perturbing the future, truncating it) is checked for them in ``test_features.py``; the
run-config round trip and the warm-up check of a config in ``tests/meta/test_trend_config.py``.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest

from market_metarl.config import build, to_table
from market_metarl.data.features import FeatureSpec, compute_features
from market_metarl.data.synthetic import gbm
from market_metarl.data.trend import (
    MACD_WARMUP,
    changepoint_scores,
    kolmogorov_sf,
    macd_intermediate,
)
from market_metarl.types import ConfigError

TREND = FeatureSpec(
    norm_return_horizons=(1, 5, 21, 63, 126, 252),
    macd_pairs=((8, 24), (16, 48), (32, 96)),
    changepoint=63,
)


def bars_of(log_close: np.ndarray) -> pd.DataFrame:
    """A bars frame whose closes are ``exp(log_close)`` (only closes and volume are read)."""
    close = 100.0 * np.exp(log_close)
    dates = pd.bdate_range("2000-01-03", periods=len(close), name="date")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=dates
    )


def random_walk(seed: int, days: int, drift: float, sigma: float) -> np.ndarray:
    """Log closes of a geometric random walk: daily log returns ``N(drift, sigma^2)``."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(drift, sigma, days))


def test_each_trend_column_is_nan_exactly_in_its_warmup() -> None:
    f = compute_features(gbm(seed=5, days=700), TREND)
    assert list(f.columns) == TREND.names()
    expected = {f"nret_{h}": max(h, 60) for h in TREND.norm_return_horizons}
    expected |= {f"macd_{s}_{lo}": MACD_WARMUP for s, lo in TREND.macd_pairs}
    expected |= {"cp_score": 63, "cp_loc": 63}
    for name, warm in expected.items():
        col = f[name].to_numpy()
        assert np.isnan(col[:warm]).all(), name
        assert np.isfinite(col[warm:]).all(), name
    assert TREND.warmup == MACD_WARMUP == 313
    assert f.iloc[: TREND.warmup].isna().any(axis=1).all()
    assert not f.iloc[TREND.warmup :].isna().any().any()


def test_warmup_is_the_longest_trend_feature_and_default_is_unchanged() -> None:
    assert FeatureSpec().warmup == 60
    default = ["log_ret", "vol", "mom_5", "mom_20", "mom_60", "drawdown", "volume_z"]
    assert FeatureSpec().names() == default
    assert FeatureSpec(norm_return_horizons=(1, 5)).warmup == 60
    assert FeatureSpec(norm_return_horizons=(252,)).warmup == 252
    assert FeatureSpec(changepoint=126).warmup == 126
    assert FeatureSpec(macd_pairs=((8, 24),), changepoint=400).warmup == 400


@pytest.mark.parametrize("h", [1, 5, 21, 63, 252])
def test_nret_of_a_drifting_random_walk_has_mean_drift_sqrt_h_over_sigma(h: int) -> None:
    drift, sigma = 0.0005, 0.01  # per day: nret_h has mean 0.05 sqrt(h) and std 1
    days = 60_000
    f = compute_features(
        bars_of(random_walk(7, days, drift, sigma)), FeatureSpec(norm_return_horizons=(h,))
    )
    samples = f[f"nret_{h}"].to_numpy()[300::h]  # non-overlapping h-day returns
    assert np.isfinite(samples).all() and len(samples) >= 200
    se = 1.0 / np.sqrt(len(samples))
    assert samples.mean() == pytest.approx(drift * np.sqrt(h) / sigma, abs=4 * se)
    assert samples.std() == pytest.approx(1.0, abs=0.12)


def test_nret_by_hand_and_clipped() -> None:
    log_close = random_walk(1, 400, 0.0, 0.01)
    f = compute_features(bars_of(log_close), FeatureSpec(norm_return_horizons=(5,)))
    ret = pd.Series(np.diff(log_close, prepend=np.nan))
    sigma = ret.ewm(span=60, min_periods=60).std().to_numpy()
    t = 200
    hand = (log_close[t] - log_close[t - 5]) / (sigma[t] * np.sqrt(5))
    assert f["nret_5"].iloc[t] == pytest.approx(hand, rel=1e-12)
    # a noiseless trend has (almost) no volatility: its normalised return is clipped
    steady = 0.001 * np.arange(300.0)
    up = compute_features(bars_of(steady), FeatureSpec(norm_return_horizons=(5,)))
    down = compute_features(bars_of(-steady), FeatureSpec(norm_return_horizons=(5,)))
    assert (up["nret_5"].iloc[60:] == 10.0).all() and (down["nret_5"].iloc[60:] == -10.0).all()


def test_nret_of_a_flat_price_is_zero() -> None:
    f = compute_features(bars_of(np.zeros(300)), FeatureSpec(norm_return_horizons=(1, 21)))
    assert (f[["nret_1", "nret_21"]].iloc[60:] == 0.0).all().all()


def test_macd_is_positive_on_a_rising_trend_and_negative_on_a_falling_one() -> None:
    rng = np.random.default_rng(2)
    trend = 0.001 * np.arange(900) + rng.normal(0.0, 0.01, 900)  # linear log price + noise
    spec = FeatureSpec(macd_pairs=((8, 24), (16, 48), (32, 96)))
    up = compute_features(bars_of(trend), spec).iloc[MACD_WARMUP:]
    down = compute_features(bars_of(-trend), spec).iloc[MACD_WARMUP:]
    cols = ["macd_8_24", "macd_16_48", "macd_32_96"]
    assert (up[cols] > 0).all().all()
    assert (down[cols] < 0).all().all()


def test_macd_feature_is_the_clipped_baz_intermediate() -> None:
    bars = gbm(seed=11, days=800)
    f = compute_features(bars, FeatureSpec(macd_pairs=((16, 48),)))
    y = macd_intermediate(bars["close"], 16, 48).to_numpy()
    np.testing.assert_array_equal(f["macd_16_48"].to_numpy()[MACD_WARMUP:], y[MACD_WARMUP:])
    assert np.abs(y[MACD_WARMUP:]).max() < 10  # nothing clipped on an ordinary path


def test_kolmogorov_sf_known_values() -> None:
    # P(sup |Brownian bridge| > x): the Kolmogorov-Smirnov critical values 1.3581 (5%), 1.6276 (1%)
    got = kolmogorov_sf(np.array([0.1, 0.5, 0.8, 1.0, 1.3581, 1.6276, 3.0]))
    want = [1.0, 0.96394524, 0.54414, 0.26999967, 0.05, 0.01, 3.045996e-08]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)


def test_changepoint_finds_a_variance_break_and_where_it_is() -> None:
    rng = np.random.default_rng(4)
    ret = rng.normal(0.0, 0.01, 600)
    brk = 400
    ret[brk:] *= 4.0  # the volatility quadruples from row 400 on
    lookback = 63
    score, loc = changepoint_scores(np.concatenate([[np.nan], ret[1:]]), lookback)
    assert score[brk - 5] < 0.5  # before the break: little evidence
    for days_after in (15, 20, 30):
        t = brk + days_after
        assert score[t] > 0.9
        first_new = brk - (t - lookback + 1)  # returns before the break inside the window
        assert abs(loc[t] * lookback - first_new) <= 3


@pytest.mark.parametrize("df", [None, 4])
def test_changepoint_score_is_low_on_a_stationary_series(df: int | None) -> None:
    rng = np.random.default_rng(9)
    ret = rng.normal(0.0, 0.01, 5000) if df is None else 0.01 * rng.standard_t(df, 5000)
    score, loc = changepoint_scores(ret, 63)
    s = score[63:]
    assert s.mean() < 0.15
    assert (s > 0.9).mean() < 0.01  # p < 0.002 on under 1% of days, fat tails included
    assert ((loc[63:] > 0) & (loc[63:] < 1)).all()


def test_changepoint_of_a_flat_series_is_zero() -> None:
    score, _ = changepoint_scores(np.zeros(100), 20)
    assert (score[20:] == 0.0).all() and np.isnan(score[:20]).all()


TOML = """
[features]
vol_window = 0
momentum_horizons = []
norm_return_horizons = [1, 5, 21, 63, 126, 252]
macd_pairs = [[8, 24], [16, 48], [32, 96]]
changepoint = 63
"""


def test_features_table_reads_the_trend_keys() -> None:
    spec = build(FeatureSpec, tomllib.loads(TOML)["features"], "features")
    assert spec.norm_return_horizons == TREND.norm_return_horizons
    assert spec.macd_pairs == TREND.macd_pairs and spec.changepoint == 63
    assert build(FeatureSpec, to_table(spec), "features") == spec


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"macd_pairs": [8, 24]}, "features.macd_pairs must be a list, got 8"),
        ({"macd_pairs": [[8, 24, 72]]}, "must be a list of 2 items"),
        ({"macd_pairs": [[24, 8]]}, "1 < short < long"),
        ({"macd_pairs": [[8, 24], [8, 24]]}, "distinct"),
        ({"norm_return_horizons": [0, 5]}, "distinct positive days"),
        ({"norm_return_horizons": [5, 5]}, "distinct positive days"),
        ({"changepoint": 5}, "0 \\(off\\) or >= 10"),
        ({"changepoint": 2.5}, "features.changepoint must be an integer"),
    ],
)
def test_bad_trend_keys_are_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(FeatureSpec, table, "features")
