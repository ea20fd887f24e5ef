"""Synthetic regime families with known parameters: the cleanest proof that adaptation works.

``ar-regimes``: a series made of consecutive regimes (tasks). Within regime ``k`` the daily log
returns follow a stationary AR(1)

    r[t] = mu_k + phi_k * (r[t-1] - mu_k) + sigma_k * sqrt(1 - phi_k**2) * eps[t],   eps ~ N(0, 1)

whose autocorrelation ``phi_k`` has a random sign (momentum if positive, mean reversion if negative)
and a magnitude drawn from ``[phi_min, phi_max]`` (default [0.3, 0.7]); the drift ``mu_k`` and the
stationary volatility ``sigma_k`` are drawn per regime too. The first return of each regime is drawn
from the regime's stationary law, so regimes are independent. Opens equal the previous close (no
overnight gap), so a weight set after the close of day t earns exactly r[t+1]; highs and lows are
drawn around open and close. Deterministic per seed.

A trader who knows the parameters expects ``mu + phi * (r[t] - mu)`` tomorrow; the oracle holds the
sign of that expectation (the best |w| <= 1 position without costs). A pooled trader, who cannot tell
the sign of phi, has nothing to hold on to: the drifts are small by design.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_metarl.types import ConfigError, DataError

SYNTHETIC_START = pd.Timestamp("2000-01-03")


@dataclass(frozen=True)
class ARRegimeParams:
    """Generating parameters of the ``ar-regimes`` family.

    Attributes:
        n_tasks: Number of regimes (tasks) in the series.
        days: Trading days per regime.
        phi_min: Smallest |autocorrelation|.
        phi_max: Largest |autocorrelation|.
        mu_scale: Std of the daily drift across regimes.
        sigma_min: Smallest daily volatility.
        sigma_max: Largest daily volatility.
        burn_in: Days of plain noise (no autocorrelation, ``sigma_min``) before the first regime,
            so features and observation windows of the first task have history to read.
    """

    n_tasks: int = 40
    days: int = 90
    phi_min: float = 0.3
    phi_max: float = 0.7
    mu_scale: float = 0.0002
    sigma_min: float = 0.005
    sigma_max: float = 0.02
    burn_in: int = 60

    def __post_init__(self) -> None:
        """Reject too few tasks or days, ``phi`` outside ``[0, 1)`` or unordered, non-positive sigmas."""
        if self.n_tasks < 1 or self.days < 5:
            raise ConfigError("synthetic: n_tasks must be >= 1 and days >= 5")
        if not 0 <= self.phi_min <= self.phi_max < 1:
            raise ConfigError(
                f"synthetic: need 0 <= phi_min <= phi_max < 1, got {self.phi_min}, {self.phi_max}"
            )
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ConfigError("synthetic: need 0 < sigma_min <= sigma_max")


@dataclass(frozen=True)
class SyntheticRegime:
    """One regime of a synthetic series, with its true parameters."""

    index: int
    start: dt.date
    end: dt.date
    phi: float
    mu: float
    sigma: float

    @property
    def label(self) -> str:
        """``momentum`` for positive autocorrelation ``phi``, else ``mean-reversion``."""
        return "momentum" if self.phi > 0 else "mean-reversion"

    def params(self) -> tuple[tuple[str, float], ...]:
        """The true generating parameters as sorted ``(name, value)`` pairs (:attr:`TaskSpec.params`)."""
        return (("mu", self.mu), ("phi", self.phi), ("sigma", self.sigma))


def ar_regimes(
    seed: int = 0, params: ARRegimeParams | None = None
) -> tuple[pd.DataFrame, list[SyntheticRegime]]:
    """Generate an ``ar-regimes`` series and its regimes.

    Returns:
        Bars (business-day dates from 2000-01-03; the first ``burn_in`` days belong to no regime) and the list of regimes with their parameters.
    """
    p = params or ARRegimeParams()
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    n = p.burn_in + p.n_tasks * p.days
    dates = pd.bdate_range(SYNTHETIC_START, periods=n + 1, name="date")
    returns = np.empty(n)
    returns[: p.burn_in] = rng.normal(0.0, p.sigma_min, p.burn_in)
    regimes = []
    for k in range(p.n_tasks):
        phi = float(rng.choice([-1.0, 1.0]) * rng.uniform(p.phi_min, p.phi_max))
        mu = float(rng.normal(0.0, p.mu_scale))
        sigma = float(rng.uniform(p.sigma_min, p.sigma_max))
        eps = rng.standard_normal(p.days)
        seg = np.empty(p.days)
        seg[0] = mu + sigma * eps[0]
        scale = sigma * np.sqrt(1.0 - phi**2)
        for t in range(1, p.days):
            seg[t] = mu + phi * (seg[t - 1] - mu) + scale * eps[t]
        lo = p.burn_in + k * p.days
        returns[lo : lo + p.days] = seg
        first, last = dates[1 + lo], dates[lo + p.days]
        regimes.append(SyntheticRegime(k, first.date(), last.date(), phi, mu, sigma))
    log_close = np.concatenate([[0.0], np.cumsum(returns)])
    close = 100.0 * np.exp(log_close)
    open_ = np.concatenate([[close[0]], close[:-1]])
    sig = np.concatenate(
        [np.full(1 + p.burn_in, p.sigma_min), np.repeat([r.sigma for r in regimes], p.days)]
    )
    wick_hi = np.abs(rng.normal(0.0, 0.5, n + 1)) * sig
    wick_lo = np.abs(rng.normal(0.0, 0.5, n + 1)) * sig
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)
    volume = np.round(1e6 * np.exp(rng.normal(0.0, 0.3, n + 1)))
    bars = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=dates
    )
    return bars, regimes


def oracle_weights(returns: np.ndarray, phi: float, mu: float) -> np.ndarray:
    """The oracle's target weight after each day, given that day's log return: sign of E[r_next]."""
    return np.sign(mu + phi * (np.asarray(returns) - mu))


def gbm(seed: int = 0, days: int = 1000, mu: float = 0.0003, sigma: float = 0.012) -> pd.DataFrame:
    """A plain geometric random walk with overnight gaps (tests and examples)."""
    if days < 2:
        raise DataError(f"synthetic:gbm needs days >= 2, got {days}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    dates = pd.bdate_range(SYNTHETIC_START, periods=days, name="date")
    gap = rng.normal(0.0, sigma * 0.3, days)
    intra = rng.normal(mu, sigma, days)
    log_open = np.cumsum(gap + np.concatenate([[0.0], intra[:-1]]))
    open_ = 100.0 * np.exp(log_open)
    close = open_ * np.exp(intra)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, sigma * 0.5, days)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, sigma * 0.5, days)))
    volume = np.round(1e6 * np.exp(rng.normal(0.0, 0.3, days)))
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=dates
    )
