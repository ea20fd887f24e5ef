"""Regime slicing on a synthetic two-regime path with a known switch, plus the error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.data.bars import validate_bars
from market_metarl.data.plotting import plot_regimes
from market_metarl.data.regime_labels import REGIME_LABELS, label_segment
from market_metarl.data.regimes import (
    REGIME_METHODS,
    method_params,
    regimes_from_frame,
    regimes_to_frame,
    slice_regimes,
)
from market_metarl.data.segmentation import fit_hmm, merge_short_runs
from market_metarl.types import ConfigError, DataError, Regime

SWITCH = 500
N = 1000


def bars_from_log_returns(log_ret: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Valid bars whose closes follow ``log_ret`` (opens near the previous close)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(log_ret))
    prev = np.concatenate([[100.0], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, 0.001, len(close)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.002, len(close))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.002, len(close))))
    index = pd.bdate_range("2010-01-04", periods=len(close), name="date")
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1e6}, index=index
    )
    return validate_bars(frame, "synthetic")[0]


def two_regime_bars(seed: int = 7) -> pd.DataFrame:
    """500 calm days drifting up (+30 %/yr, 10 % vol), then 500 volatile down (-80 %/yr, 45 %)."""
    rng = np.random.default_rng(seed)
    calm = rng.normal(0.30 / 252, 0.10 / np.sqrt(252), SWITCH)
    wild = rng.normal(-0.80 / 252, 0.45 / np.sqrt(252), N - SWITCH)
    return bars_from_log_returns(np.concatenate([calm, wild]), seed)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return two_regime_bars()


@pytest.fixture(scope="module")
def all_regimes(bars: pd.DataFrame) -> dict[str, list[Regime]]:
    return {m: slice_regimes(bars, m, symbol="SYN", min_length=20, seed=0) for m in REGIME_METHODS}


def rows_of(bars: pd.DataFrame, regime: Regime) -> np.ndarray:
    return np.flatnonzero((bars.index >= regime.start) & (bars.index <= regime.end))


def regime_at(bars: pd.DataFrame, regimes: list[Regime], row: int) -> Regime:
    day = bars.index[row]
    (hit,) = [r for r in regimes if r.start <= day <= r.end]
    return hit


def boundaries(bars: pd.DataFrame, regimes: list[Regime]) -> list[int]:
    """Row of each regime start after the first."""
    return [int(bars.index.searchsorted(r.start)) for r in regimes[1:]]


# ---------------------------------------------------------------------------- every method


@pytest.mark.parametrize("method", list(REGIME_METHODS))
def test_regimes_tile_the_series(
    bars: pd.DataFrame, all_regimes: dict[str, list[Regime]], method: str
) -> None:
    regimes = all_regimes[method]
    assert regimes[0].start == bars.index[0]
    assert regimes[-1].end == bars.index[-1]
    covered = np.concatenate([rows_of(bars, r) for r in regimes])
    np.testing.assert_array_equal(covered, np.arange(len(bars)))  # contiguous, no overlap
    for r in regimes:
        assert len(rows_of(bars, r)) >= 20
        assert r.label in REGIME_LABELS
        assert (r.symbol, r.method) == ("SYN", method)


@pytest.mark.parametrize("method", ["hmm", "changepoint"])
def test_fitted_methods_find_the_switch(
    bars: pd.DataFrame, all_regimes: dict[str, list[Regime]], method: str
) -> None:
    regimes = all_regimes[method]
    nearest = min(boundaries(bars, regimes), key=lambda b: abs(b - SWITCH))
    assert abs(nearest - SWITCH) <= 20, boundaries(bars, regimes)
    assert regime_at(bars, regimes, 250).label == "bull-calm"
    assert regime_at(bars, regimes, 750).label == "bear-volatile"


def test_trend_vol_labels_the_halves_with_a_causal_lag(
    bars: pd.DataFrame, all_regimes: dict[str, list[Regime]]
) -> None:
    regimes = all_regimes["trend-vol"]
    assert regime_at(bars, regimes, 250).label == "bull-calm"
    assert regime_at(bars, regimes, 750).label == "bear-volatile"
    # trailing 63-day windows see the switch only after it happened, never before
    assert any(SWITCH <= b <= SWITCH + 63 for b in boundaries(bars, regimes))


@pytest.mark.parametrize(
    ("length", "min_length", "expected_sizes"),
    [
        (126, 20, [126] * 7 + [118]),  # remainder 118 >= min_length: its own window
        (100, 20, [100] * 10),
        (120, 50, [120] * 7 + [160]),  # remainder 40 < min_length: joins the last window
    ],
)
def test_window_sizes(
    bars: pd.DataFrame, length: int, min_length: int, expected_sizes: list[int]
) -> None:
    regimes = slice_regimes(bars, "window", min_length=min_length, length=length)
    assert [len(rows_of(bars, r)) for r in regimes] == expected_sizes


def test_same_seed_same_regimes(bars: pd.DataFrame) -> None:
    assert slice_regimes(bars, "hmm", seed=3) == slice_regimes(bars, "hmm", seed=3)


def test_hmm_fit_ignores_bars_after_fit_end(bars: pd.DataFrame) -> None:
    fit_end = bars.index[600]
    rng = np.random.default_rng(1)
    perturbed = bars.copy()
    factor = np.exp(np.cumsum(rng.normal(0.0, 0.03, len(bars) - 601)))
    perturbed.iloc[601:, :4] = perturbed.iloc[601:, :4].to_numpy() * factor[:, None]
    a = fit_hmm(bars, seed=0, fit_end=fit_end)
    b = fit_hmm(perturbed, seed=0, fit_end=fit_end)
    assert a.fit_rows == b.fit_rows == 601
    np.testing.assert_array_equal(a.model.means_, b.model.means_)
    np.testing.assert_array_equal(a.model.covars_, b.model.covars_)
    np.testing.assert_array_equal(a.model.transmat_, b.model.transmat_)
    np.testing.assert_array_equal(a.mean, b.mean)
    # and the hindsight fit on everything does see them
    assert not np.array_equal(fit_hmm(bars).model.means_, fit_hmm(perturbed).model.means_)
    regimes = slice_regimes(bars, "hmm", fit_end="2012-04-20")
    assert regimes[-1].end == bars.index[-1]


def test_hmm_fit_end_too_early(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="move fit_end later"):
        slice_regimes(bars, "hmm", fit_end=bars.index[5])


# ---------------------------------------------------------------------------- labels, merging


def alternating(mu: float, sigma: float, n: int = 253) -> pd.DataFrame:
    """Bars whose daily log returns are exactly ``mu +/- sigma`` in turn."""
    signs = np.where(np.arange(n - 1) % 2 == 0, 1.0, -1.0)
    close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(mu + sigma * signs)]))
    return pd.DataFrame({"close": close})


@pytest.mark.parametrize(
    ("mu", "sigma", "label"),
    [
        (0.001, 0.005, "bull-calm"),  # +25 %/yr, 8 % vol
        (0.001, 0.02, "bull-volatile"),  # 32 % vol
        (-0.001, 0.005, "bear-calm"),
        (-0.001, 0.02, "bear-volatile"),
        (0.0001, 0.005, "sideways-calm"),  # +2.5 %/yr
        (-0.0001, 0.02, "sideways-volatile"),
    ],
)
def test_label_segment_known_answers(mu: float, sigma: float, label: str) -> None:
    assert label_segment(alternating(mu, sigma)) == label


def test_label_thresholds_are_parameters(bars: pd.DataFrame) -> None:
    assert label_segment(alternating(0.001, 0.02), vol_threshold=0.40) == "bull-calm"
    regimes = slice_regimes(bars, "window", length=500, vol_threshold=0.9, trend_threshold=0.0)
    assert [r.label for r in regimes] == ["bull-calm", "bear-calm"]


def test_merge_short_runs_coalesces_equal_neighbours() -> None:
    keys = np.array([0] * 30 + [1] * 5 + [0] * 30)
    assert merge_short_runs(keys, 20, np.zeros((65, 1))) == [(0, 65)]


def test_merge_short_runs_picks_the_most_similar_neighbour() -> None:
    keys = np.array([0] * 30 + [1] * 5 + [2] * 30)
    features = np.concatenate([np.zeros(30), np.ones(5), np.ones(30)])[:, None]
    assert merge_short_runs(keys, 20, features) == [(0, 30), (30, 65)]
    # a tie goes to the preceding one
    assert merge_short_runs(keys, 20, np.zeros((65, 1))) == [(0, 35), (35, 65)]


# ---------------------------------------------------------------------------- errors


def test_unknown_method_lists_the_valid_ones(bars: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="valid methods: window, trend-vol, hmm, changepoint"):
        slice_regimes(bars, "kmeans")


def test_unknown_param_names_the_valid_ones(bars: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"'hmm' has no parameter\(s\) 'lenght'.*n_states"):
        slice_regimes(bars, "hmm", lenght=3)
    assert method_params("window") == ("length", "trend_threshold", "vol_threshold")


def test_bad_param_value(bars: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="length"):
        slice_regimes(bars, "window", length=10)  # below min_length
    with pytest.raises(ConfigError, match="penalty"):
        slice_regimes(bars, "changepoint", penalty=-1.0)


def test_too_short_series(bars: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"has 39 row\(s\), at least 40 needed"):
        slice_regimes(bars.iloc[:39], "window", min_length=20)


# ---------------------------------------------------------------------------- tables, plots


def test_frame_round_trip(bars: pd.DataFrame, all_regimes: dict[str, list[Regime]]) -> None:
    regimes = all_regimes["changepoint"]
    frame = regimes_to_frame(regimes, bars)
    assert list(frame.columns) == ["symbol", "start", "end", "label", "method", "days"]
    assert frame["days"].sum() == len(bars)
    assert regimes_from_frame(frame) == regimes
    assert regimes_from_frame(regimes_to_frame(regimes)) == regimes
    with pytest.raises(DataError, match="lacks column"):
        regimes_from_frame(frame.drop(columns=["label"]))


def test_plot_regimes_writes_a_png(
    tmp_path: Path, bars: pd.DataFrame, all_regimes: dict[str, list[Regime]]
) -> None:
    import matplotlib.pyplot as plt

    out = plot_regimes(bars, all_regimes["hmm"], tmp_path / "sub" / "regimes.png")
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []
