"""Causal features: nothing at date t moves when bars after t change; known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_metarl.data.features import FeatureSpec, compute_features, feature_matrix
from market_metarl.data.synthetic import gbm
from market_metarl.types import ConfigError

SPEC = FeatureSpec(vol_window=10, momentum_horizons=(1, 5, 20), volume_window=15, return_lags=3)
TREND = FeatureSpec(
    vol_window=10,
    momentum_horizons=(1, 5, 20),
    volume_window=15,
    return_lags=3,
    norm_return_horizons=(1, 5, 21, 63, 126, 252),
    macd_pairs=((8, 24), (16, 48), (32, 96)),
    changepoint=63,
)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return gbm(seed=3, days=200)


@pytest.fixture(scope="module")
def long_bars() -> pd.DataFrame:
    return gbm(seed=3, days=450)  # past the trend features' 313-row warm-up


def perturb_after(bars: pd.DataFrame, cut: int, seed: int) -> pd.DataFrame:
    """A copy whose bars after row ``cut`` are scaled at random (still valid bars)."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    tail = slice(cut + 1, None)
    n = len(out) - cut - 1
    out.iloc[tail, :4] = out.iloc[tail, :4].to_numpy() * rng.uniform(0.5, 2.0, (n, 1))
    out.iloc[tail, 4] = out.iloc[tail, 4].to_numpy() * rng.uniform(0.1, 10.0, n)
    return out


@pytest.mark.parametrize("cut", [0, 5, 30, 120, 198])
def test_features_up_to_t_ignore_every_later_bar(bars: pd.DataFrame, cut: int) -> None:
    sparse = bars.index[::2]  # every other day, so the as-of fill is exercised too
    vix = pd.Series(np.random.default_rng(0).uniform(10, 40, len(sparse)), index=sparse)
    base = compute_features(bars, SPEC, vix=vix)
    changed_vix = vix.copy()
    changed_vix[changed_vix.index > bars.index[cut]] *= 3.0
    moved = compute_features(perturb_after(bars, cut, seed=cut), SPEC, vix=changed_vix)
    assert list(base.columns) == list(moved.columns)
    before, after = base.iloc[: cut + 1].to_numpy(), moved.iloc[: cut + 1].to_numpy()
    assert np.array_equal(before, after, equal_nan=True)
    if cut < len(bars) - 1:  # the perturbation is real: something later did change
        assert not np.array_equal(base.to_numpy(), moved.to_numpy(), equal_nan=True)


@pytest.mark.parametrize("cut", [0, 62, 63, 200, 312, 313, 314, 400, 448])
def test_trend_features_up_to_t_ignore_every_later_bar(long_bars: pd.DataFrame, cut: int) -> None:
    base = compute_features(long_bars, TREND)
    moved = compute_features(perturb_after(long_bars, cut, seed=cut), TREND)
    assert list(base.columns) == TREND.names()
    before, after = base.iloc[: cut + 1].to_numpy(), moved.iloc[: cut + 1].to_numpy()
    assert np.array_equal(before, after, equal_nan=True)
    later = slice(max(cut + 1, TREND.warmup), None)  # the perturbation reaches the new columns
    new = [c for c in TREND.names() if c not in SPEC.names() and c != "cp_loc"]
    assert (base[new].iloc[later] != moved[new].iloc[later]).any().all()


@pytest.mark.parametrize("n", [64, 314, 400])
def test_trend_features_of_a_prefix_equal_the_prefix_of_the_features(
    long_bars: pd.DataFrame, n: int
) -> None:
    whole = compute_features(long_bars, TREND).iloc[:n].to_numpy()
    prefix = compute_features(long_bars.iloc[:n], TREND).to_numpy()
    assert np.array_equal(whole, prefix, equal_nan=True)


def test_log_ret_is_log_close_ratio(bars: pd.DataFrame) -> None:
    f = compute_features(bars, SPEC)
    close = bars["close"].to_numpy()
    assert f["log_ret"].iloc[0] == 0.0
    np.testing.assert_allclose(f["log_ret"].to_numpy()[1:], np.log(close[1:] / close[:-1]))


def test_drawdown_is_non_positive_and_zero_at_new_highs(bars: pd.DataFrame) -> None:
    f = compute_features(bars, SPEC)
    close = bars["close"].to_numpy()
    new_high = close >= np.maximum.accumulate(close)
    dd = f["drawdown"].to_numpy()
    assert (dd <= 0).all()
    assert (dd[new_high] == 0).all()
    assert (dd[~new_high] < 0).all()
    assert new_high.sum() > 3 and (~new_high).sum() > 3


def test_vol_momentum_and_lags_known_values(bars: pd.DataFrame) -> None:
    f = compute_features(bars, SPEC)
    log_close = np.log(bars["close"].to_numpy())
    r = np.diff(log_close, prepend=log_close[0])
    t = 50
    assert f["vol"].iloc[t] == pytest.approx(np.std(r[t - 9 : t + 1], ddof=1) * np.sqrt(252))
    assert f["mom_5"].iloc[t] == pytest.approx(
        (log_close[t] - log_close[t - 5]) / (np.sqrt(5) * 0.01)
    )
    assert f["mom_1"].iloc[t] == pytest.approx(r[t] / 0.01)
    assert f["ret_lag3"].iloc[t] == r[t - 3]
    log_vol = np.log(bars["volume"].to_numpy()[t - 14 : t + 1])
    z = (log_vol[-1] - log_vol.mean()) / log_vol.std(ddof=1)
    assert f["volume_z"].iloc[t] == pytest.approx(z)


def test_warmup_rows_are_nan_and_later_rows_complete(bars: pd.DataFrame) -> None:
    f = compute_features(bars, SPEC)
    assert SPEC.warmup == 20
    assert list(f.columns) == SPEC.names()
    assert f.iloc[: SPEC.warmup].isna().any(axis=1).all()
    assert not f.iloc[SPEC.warmup :].isna().any().any()
    assert f.index.equals(bars.index)
    assert (f.dtypes == np.float64).all()


def test_vix_is_aligned_as_of_never_forward(bars: pd.DataFrame) -> None:
    vix = pd.Series([20.0, 30.0], index=[bars.index[3], bars.index[10]])
    f = compute_features(bars, SPEC, vix=vix)
    assert f["vix"].iloc[:3].isna().all()
    assert (f["vix"].iloc[3:10] == 0.2).all()
    assert (f["vix"].iloc[10:] == 0.3).all()


def test_missing_volume_gives_zero_volume_z(bars: pd.DataFrame) -> None:
    f = compute_features(bars.assign(volume=0.0), SPEC)
    assert (f["volume_z"] == 0.0).all()


def test_feature_matrix_is_float32_without_nan(bars: pd.DataFrame) -> None:
    m = feature_matrix(bars, SPEC, columns=["log_ret", "vol"])
    assert m.dtype == np.float32 and m.shape == (len(bars), 2)
    assert np.isfinite(m).all()
    assert (m[: SPEC.vol_window - 1, 1] == 0).all()


def test_optional_features_can_be_turned_off(bars: pd.DataFrame) -> None:
    spec = FeatureSpec(momentum_horizons=(), volume_window=0, drawdown=False)
    assert list(compute_features(bars, spec).columns) == ["log_ret", "vol"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vol_window": 1}, "vol_window must be >= 2"),
        ({"momentum_horizons": (5, 0)}, "momentum_horizons must be positive"),
        ({"return_lags": -1}, "must be >= 0"),
    ],
)
def test_bad_feature_spec_is_a_config_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FeatureSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(),
        FeatureSpec(vol_window=0, momentum_horizons=(), volume_window=0, drawdown=False),
        FeatureSpec(vol_window=0, return_lags=2, norm_return_horizons=(1, 5)),
    ],
)
def test_names_are_the_columns_computed(bars: pd.DataFrame, spec: FeatureSpec) -> None:
    # feature_index strides the observation by names(): a column it does not list (the
    # all-NaN vol of vol_window = 0 once was) would shift every feature after it
    assert spec.names() == list(compute_features(bars, spec).columns)
