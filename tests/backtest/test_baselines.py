"""The baselines' weight functions: known answers, and weights up to t blind to bars after t."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from market_metarl.backtest.baselines import (
    baz_response,
    macd_signal,
    macd_weights,
    realised_vol,
    tsmom_signal,
    tsmom_weights,
    vol_target_weights,
)
from market_metarl.backtest.regime_switch import fit_return_hmm, hmm_switch_weights
from market_metarl.backtest.settings import BacktestSettings, backtest_settings
from market_metarl.types import ConfigError, DataError

DATES = pd.bdate_range("2001-01-01", periods=900)


def _walk(seed: int = 0, n: int = 900, drift: float = 0.0003) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(drift, 0.012, n))), index=DATES[:n])


def _future_altered(close: pd.Series, cut: int) -> pd.Series:
    out = close.copy()
    factor = np.random.default_rng(1).uniform(0.6, 1.5, len(close) - cut - 1)
    out.iloc[cut + 1 :] = out.iloc[cut + 1 :].to_numpy() * factor
    return out


def test_constant_volatility_gives_a_constant_weight() -> None:
    s, window = 0.01, 60
    log_ret = np.where(np.arange(400) % 2 == 0, s, -s)  # any 60 days: 30 up, 30 down
    close = pd.Series(100 * np.exp(np.cumsum(log_ret)), index=DATES[:400])
    sigma = s * math.sqrt(window / (window - 1)) * math.sqrt(252)
    w = vol_target_weights(close, target=0.15, window=window, max_leverage=2.0)
    assert (w.iloc[:window] == 0).all()  # a window of returns needs window + 1 closes
    np.testing.assert_allclose(w.iloc[window:], 0.15 / sigma, rtol=1e-9)
    assert realised_vol(close, window).iloc[window:].std() < 1e-12
    capped = vol_target_weights(close, target=5.0, window=window, max_leverage=1.5)
    assert (capped.iloc[window:] == 1.5).all()


def test_steady_trends_give_tsmom_plus_and_minus_one() -> None:
    up = pd.Series(100 * np.exp(0.001 * np.arange(400)), index=DATES[:400])
    sig = tsmom_signal(up)
    assert (sig.iloc[:252] == 0).all() and (sig.iloc[252:] == 1).all()
    w = tsmom_weights(up, max_leverage=1.0)  # no volatility: the weight is capped at 1
    assert (w.iloc[252:] == 1.0).all()
    down = pd.Series(up.to_numpy()[::-1], index=up.index)
    assert (tsmom_weights(down).iloc[252:] == -1.0).all()
    assert (tsmom_weights(down, long_only=True) == 0.0).all()
    # the signal is the 12-1 month return: the last 21 days do not count
    bent = up.copy()
    bent.iloc[-21:] = bent.iloc[-22] * np.exp(-0.05 * np.arange(1, 22))
    assert tsmom_signal(bent).iloc[-1] == 1.0


def test_baz_response_peaks_at_root_two() -> None:
    y = np.linspace(-6, 6, 120001)
    phi = baz_response(y)
    assert y[np.argmax(phi)] == pytest.approx(math.sqrt(2), abs=1e-4)
    assert phi.max() == pytest.approx(math.sqrt(2) * math.exp(-0.5) / 0.89, rel=1e-9)
    assert phi.max() == pytest.approx(0.9638, abs=1e-4)
    np.testing.assert_allclose(baz_response(-y), -phi)


def test_macd_signal_by_hand() -> None:
    close = _walk(3, 500)
    t = 450
    px = close.to_numpy()[: t + 1]

    def ewma(n: int) -> float:  # adjusted weights (1 - 1/n)^i, newest first
        w = (1 - 1 / n) ** np.arange(len(px))[::-1]
        return float(np.sum(w * px) / np.sum(w))

    def q_at(end: int, short: int, long: int) -> float:
        sub = close.to_numpy()[: end + 1]
        ws = (1 - 1 / short) ** np.arange(len(sub))[::-1]
        wl = (1 - 1 / long) ** np.arange(len(sub))[::-1]
        macd = np.sum(ws * sub) / ws.sum() - np.sum(wl * sub) / wl.sum()
        return float(macd / np.std(sub[-63:], ddof=1))

    parts = []
    for short, long in ((8, 24), (16, 48), (32, 96)):
        qs = [q_at(e, short, long) for e in range(t - 251, t + 1)]
        parts.append(baz_response(float(qs[-1] / np.std(qs, ddof=1))))
    assert ewma(8) == pytest.approx(close.iloc[: t + 1].ewm(alpha=1 / 8).mean().iloc[-1])
    assert macd_signal(close).iloc[t] == pytest.approx(float(np.mean(parts)), rel=1e-9)
    assert (macd_signal(close).iloc[: 63 + 252 - 2] == 0).all()  # no history, no signal


@pytest.mark.parametrize("name", ["vol_target", "tsmom", "macd", "hmm_switch"])
def test_weights_up_to_t_ignore_later_closes(name: str) -> None:
    close = _walk()
    cut = 700
    fns = {
        "vol_target": lambda c: vol_target_weights(c, 0.15, 60, 1.0),
        "tsmom": lambda c: tsmom_weights(c, 0.15, 60, 1.0),
        "macd": lambda c: macd_weights(c, 0.15, 60, 1.0),
        "hmm_switch": lambda c: hmm_switch_weights(c, DATES[600], 0.15, 60, 1.0),
    }
    a, b = fns[name](close), fns[name](_future_altered(close, cut))
    assert (a.iloc[: cut + 1] != 0).any()
    pd.testing.assert_series_equal(a.iloc[: cut + 1], b.iloc[: cut + 1], check_exact=True)
    assert not a.iloc[cut + 1 :].equals(b.iloc[cut + 1 :])


def _two_regimes() -> pd.Series:
    rng = np.random.default_rng(5)
    vol = np.where((np.arange(900) // 150) % 2 == 0, 0.005, 0.03)  # calm, wild, calm, ...
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, vol))), index=DATES)


def test_hmm_finds_the_calm_regime_and_is_fitted_on_training_bars_only() -> None:
    close = _two_regimes()
    fit_end = DATES[599]
    hmm = fit_return_hmm(close.loc[:fit_end])
    assert math.sqrt(hmm.variances[hmm.calm]) == pytest.approx(0.5, rel=0.2)  # percent a day
    p = hmm.calm_probability(close)
    assert np.isnan(p.iloc[0])
    calm_days = (np.arange(900) // 150) % 2 == 0
    assert p[calm_days].iloc[10:].mean() > 0.9 and p[~calm_days].mean() < 0.1
    # bars after fit_end never reach the fit: the model and the weights up to it are unchanged
    altered = _future_altered(close, 599)
    same = fit_return_hmm(altered.loc[:fit_end])
    np.testing.assert_array_equal(same.transition, hmm.transition)
    np.testing.assert_array_equal(same.means, hmm.means)
    a = hmm_switch_weights(close, fit_end, max_leverage=1.0)
    b = hmm_switch_weights(altered, fit_end, max_leverage=1.0)
    pd.testing.assert_series_equal(a.loc[:fit_end], b.loc[:fit_end], check_exact=True)
    assert (a[~calm_days].iloc[20:] == 0).mean() > 0.9  # flat in the wild regime
    with pytest.raises(DataError, match="at least 250"):
        hmm_switch_weights(close, DATES[100])


def test_settings_defaults_and_unknown_keys() -> None:
    assert backtest_settings(None) == BacktestSettings()
    s = backtest_settings({"vol_target": 0.1, "vol_window": 20})
    assert (s.vol_target, s.vol_window, s.block_days) == (0.1, 20, 20)
    with pytest.raises(ConfigError, match=r"backtest\.vol_taget.*valid keys.*vol_target"):
        backtest_settings({"vol_taget": 0.1})
    with pytest.raises(ConfigError, match="vol_target must be > 0"):
        backtest_settings({"vol_target": 0})
    with pytest.raises(ConfigError, match="tsmom_skip"):
        backtest_settings({"tsmom_skip": 300})
    with pytest.raises(ConfigError, match="block_days"):
        backtest_settings({"block_days": 0})
