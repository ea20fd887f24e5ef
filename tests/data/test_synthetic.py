"""Synthetic regimes: deterministic, with true parameters an oracle can profit from."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest

from market_metarl.data.bars import validate_bars
from market_metarl.data.sources import load_bars
from market_metarl.data.synthetic import (
    SYNTHETIC_START,
    ARRegimeParams,
    SyntheticRegime,
    ar_regimes,
    gbm,
    oracle_weights,
)
from market_metarl.types import ConfigError, DataError

PARAMS = ARRegimeParams(n_tasks=20, days=60)


def regime_returns(bars: pd.DataFrame, regime: SyntheticRegime) -> np.ndarray:
    """Close-to-close log returns of the days of ``regime`` (each against the previous close)."""
    log_ret = np.log(bars["close"]).diff()
    return log_ret.loc[pd.Timestamp(regime.start) : pd.Timestamp(regime.end)].to_numpy()


def row(bars: pd.DataFrame, day: dt.date) -> int:
    """Row of ``day`` in ``bars`` (unique dates, so a single int)."""
    loc = bars.index.get_loc(pd.Timestamp(day))
    assert isinstance(loc, int)
    return loc


def test_same_seed_same_series_and_regimes() -> None:
    a, ra = ar_regimes(3, PARAMS)
    b, rb = ar_regimes(3, PARAMS)
    pd.testing.assert_frame_equal(a, b)
    assert ra == rb


def test_different_seeds_differ() -> None:
    a, ra = ar_regimes(3, PARAMS)
    b, rb = ar_regimes(4, PARAMS)
    assert not np.allclose(a["close"].to_numpy(), b["close"].to_numpy())
    assert [r.phi for r in ra] != [r.phi for r in rb]


def test_regimes_tile_the_series_with_their_true_params() -> None:
    bars, regimes = ar_regimes(1, PARAMS)
    assert bars.index[0] == SYNTHETIC_START
    assert bars.index[0] < pd.Timestamp(regimes[0].start)
    assert pd.Timestamp(regimes[-1].end) == bars.index[-1]
    assert len(regimes) == PARAMS.n_tasks
    for k, r in enumerate(regimes):
        days = bars.index[
            (bars.index >= pd.Timestamp(r.start)) & (bars.index <= pd.Timestamp(r.end))
        ]
        assert len(days) == PARAMS.days
        assert r.index == k
        assert dict(r.params()) == {"mu": r.mu, "phi": r.phi, "sigma": r.sigma}
        assert r.label == ("momentum" if r.phi > 0 else "mean-reversion")
        assert PARAMS.sigma_min <= r.sigma <= PARAMS.sigma_max
    for prev, nxt in itertools.pairwise(regimes):
        assert row(bars, nxt.start) == row(bars, prev.end) + 1


def test_phi_magnitudes_in_range_with_both_signs() -> None:
    _, regimes = ar_regimes(0, ARRegimeParams(n_tasks=40, days=10))
    phis = np.array([r.phi for r in regimes])
    assert np.all((np.abs(phis) >= 0.3) & (np.abs(phis) <= 0.7))
    assert (phis > 0).any() and (phis < 0).any()


def test_phi_range_is_configurable_and_checked() -> None:
    _, regimes = ar_regimes(0, ARRegimeParams(n_tasks=10, days=10, phi_min=0.5, phi_max=0.6))
    assert all(0.5 <= abs(r.phi) <= 0.6 for r in regimes)
    with pytest.raises(ConfigError, match="phi_max < 1"):
        ARRegimeParams(phi_max=1.0)
    with pytest.raises(ConfigError, match="days >= 5"):
        ARRegimeParams(days=3)


def test_opens_equal_previous_closes_and_bars_are_valid() -> None:
    bars, _ = ar_regimes(2, PARAMS)
    assert np.array_equal(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1])
    validated, report = validate_bars(bars)
    pd.testing.assert_frame_equal(validated, bars, check_freq=False)
    assert report.notes == [] and report.warnings == []


def test_sample_autocorrelation_has_the_sign_of_phi() -> None:
    bars, regimes = ar_regimes(5, PARAMS)
    agree = []
    for g in regimes:
        r = regime_returns(bars, g)
        agree.append(np.sign(np.corrcoef(r[:-1], r[1:])[0, 1]) == np.sign(g.phi))
    assert np.mean(agree) >= 0.85


def oracle_pnl(seed: int, phi_of: str = "true") -> np.ndarray:
    """Next-day log returns earned by sign(mu + phi * (r - mu)) inside each regime."""
    bars, regimes = ar_regimes(seed, PARAMS)
    out = []
    for g in regimes:
        r = regime_returns(bars, g)
        phi = {"true": g.phi, "momentum": 0.5, "reversion": -0.5}[phi_of]
        out.append(oracle_weights(r[:-1], phi, g.mu) * r[1:])
    return np.concatenate(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_earns_a_clearly_positive_mean_return(seed: int) -> None:
    pnl = oracle_pnl(seed)
    t_stat = pnl.mean() / pnl.std(ddof=1) * np.sqrt(len(pnl))
    assert t_stat > 8.0
    bars, _ = ar_regimes(seed, PARAMS)
    mean_abs = np.abs(np.diff(np.log(bars["close"].to_numpy()))).mean()
    assert pnl.mean() > 0.25 * mean_abs


def test_a_trader_who_guesses_one_sign_of_phi_earns_far_less() -> None:
    oracle = oracle_pnl(0).mean()
    for guess in ("momentum", "reversion"):
        assert oracle_pnl(0, guess).mean() < 0.5 * oracle


def test_oracle_weights_known_values() -> None:
    w = oracle_weights(np.array([0.02, -0.01, 0.0]), phi=-0.5, mu=0.001)
    # mu + phi * (r - mu): -0.0085, 0.0065, 0.0015
    np.testing.assert_array_equal(w, [-1.0, 1.0, 1.0])


def test_params_dataclass_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PARAMS.days = 5  # type: ignore[misc]


def test_gbm_is_deterministic_valid_and_sized() -> None:
    a = gbm(seed=1, days=300)
    pd.testing.assert_frame_equal(a, gbm(seed=1, days=300))
    assert not np.allclose(a["close"], gbm(seed=2, days=300)["close"])
    assert len(a) == 300 and a.index[0] == SYNTHETIC_START
    validate_bars(a)
    with pytest.raises(DataError, match="days >= 2"):
        gbm(days=1)


def test_synthetic_source_spec_matches_the_generator() -> None:
    bars = load_bars("synthetic:ar-regimes?seed=7&tasks=4&days=20")
    expected, _ = ar_regimes(7, ARRegimeParams(n_tasks=4, days=20))
    pd.testing.assert_frame_equal(bars, expected, check_freq=False)
    gbm_bars = load_bars("synthetic:gbm?seed=1&days=50")
    pd.testing.assert_frame_equal(gbm_bars, gbm(seed=1, days=50), check_freq=False)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:ar-regimes?sed=1", r"unknown option\(s\) sed; valid: days, seed, tasks"),
        ("synthetic:gbm?seed=one", r"option seed must be an integer, got 'one'"),
        ("synthetic:sine", r"unknown synthetic family 'sine'; valid: ar-regimes, gbm"),
        ("synthetic:ar-regimes?days=2", r"days >= 5"),
    ],
)
def test_bad_synthetic_specs_say_what_is_valid(spec: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_bars(spec)
