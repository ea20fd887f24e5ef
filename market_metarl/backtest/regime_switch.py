"""``hmm_switch``: long (vol-scaled) while a two-state HMM of daily returns says the market is calm.

A two-state Gaussian HMM (hmmlearn's ``GaussianHMM``) of daily log returns **in percent** (so
that hmmlearn's variance floor is negligible and fits on different assets share units) is fitted
on training data only (:func:`fit_return_hmm`, e.g. the closes up to the end of a run's training
split). The calm state is the one with the smaller variance. :meth:`ReturnHMM.calm_probability`
then runs the forward algorithm (filtering, never smoothing) over any closes, so
``P(calm | returns up to t)`` reads nothing after ``t``. :func:`hmm_switch_weights` holds
:func:`~market_metarl.backtest.baselines.vol_target_weights` on days when that probability exceeds
0.5 and is flat otherwise.

The repository's regime slicer (:func:`market_metarl.data.segmentation.fit_hmm`) fits on
[return, rolling volatility] with a back-filled warm-up and decodes with Viterbi (hindsight): right
for slicing history into tasks, not for a causal trading signal, hence this small model.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.backtest.baselines import vol_target_weights
from market_metarl.types import TRADING_DAYS_PER_YEAR, DataError


def _percent_returns(close: pd.Series) -> np.ndarray:
    """Daily log returns in percent, ``100 log(close_t / close_{t-1})`` (one fewer than closes)."""
    px = close.to_numpy(dtype=np.float64)
    if len(px) and not (np.isfinite(px).all() and (px > 0).all()):
        raise DataError("closes must be positive and finite to fit or filter the HMM")
    return np.asarray(100.0 * np.diff(np.log(px)))


@dataclass(frozen=True)
class ReturnHMM:
    """A fitted two-state Gaussian HMM of daily log returns in percent.

    Attributes:
        start: Probability of each state on the first return ``(2,)``.
        transition: ``transition[i, j] = P(state j tomorrow | state i today)`` ``(2, 2)``.
        means: Mean daily return of each state, percent ``(2,)``.
        variances: Variance of each state's daily return, percent squared ``(2,)``.
        calm: Index of the calm state (the smaller variance).
        fit_days: Returns the model was fitted on.
    """

    start: np.ndarray
    transition: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    calm: int
    fit_days: int

    def calm_probability(self, close: pd.Series) -> pd.Series:
        """Filtered ``P(calm | returns up to t)`` per day of ``close`` (NaN on the first day).

        The forward algorithm: ``p_t ∝ (p_{t-1} @ transition) * N(r_t; mean, variance)``, with
        ``start`` in place of ``p_0 @ transition`` on the first return, normalised every day in
        log space (no underflow on extreme returns).
        """
        r = _percent_returns(close)
        loglik = -0.5 * (
            np.log(2.0 * math.pi * self.variances) + (r[:, None] - self.means) ** 2 / self.variances
        )
        out = np.full(len(close), np.nan)
        prior = self.start
        for t in range(len(r)):
            ll = loglik[t] - loglik[t].max()
            post = prior * np.exp(ll)
            post = post / post.sum()
            out[t + 1] = post[self.calm]
            prior = post @ self.transition
        return pd.Series(out, index=close.index, name="p_calm")

    def as_dict(self) -> dict[str, Any]:
        """The calm and turbulent states' annualised mean and volatility (for ``metrics.json``)."""
        states = {"calm": self.calm, "turbulent": 1 - self.calm}
        return {
            name: {
                "mean_annual": float(self.means[i]) / 100 * TRADING_DAYS_PER_YEAR,
                "vol_annual": math.sqrt(float(self.variances[i]) * TRADING_DAYS_PER_YEAR) / 100,
                "stay_probability": float(self.transition[i, i]),
            }
            for name, i in states.items()
        } | {"fit_days": self.fit_days}


def fit_return_hmm(
    closes: pd.Series | Sequence[pd.Series], seed: int = 0, n_iter: int = 100, min_days: int = 20
) -> ReturnHMM:
    """Fit the two-state HMM on the daily returns of ``closes`` (one series or several).

    Several series are separate sequences of one model (no return across their seams). Pass only
    training data: everything given is fitted on.

    Args:
        closes: Training closes (each on a sorted date index).
        seed: Seed of hmmlearn's k-means initialisation.
        n_iter: Most EM iterations.
        min_days: Fewest returns to fit on.

    Raises:
        DataError: Fewer than ``min_days`` returns, or returns that barely vary.
    """
    from hmmlearn.hmm import GaussianHMM
    from threadpoolctl import threadpool_limits

    series = [closes] if isinstance(closes, pd.Series) else list(closes)
    parts = [_percent_returns(c) for c in series if len(c) > 1]
    n = sum(len(p) for p in parts)
    if n < min_days:
        raise DataError(
            f"hmm_switch: {n} daily return(s) to fit the HMM on, at least {min_days} needed; "
            "give a longer training period"
        )
    x = np.concatenate(parts)
    if len(np.unique(np.round(x, 10))) < 4:
        raise DataError("hmm_switch: the training returns barely vary; there is nothing to fit")
    model = GaussianHMM(n_components=2, covariance_type="diag", n_iter=n_iter, random_state=seed)
    with threadpool_limits(limits=1):  # a (n, 1) fit gains nothing from BLAS threads
        model.fit(x[:, None], lengths=[len(p) for p in parts])
    variances = np.asarray(model.covars_, dtype=np.float64).reshape(2)
    return ReturnHMM(
        start=np.asarray(model.startprob_, dtype=np.float64),
        transition=np.asarray(model.transmat_, dtype=np.float64),
        means=np.asarray(model.means_, dtype=np.float64).reshape(2),
        variances=variances,
        calm=int(np.argmin(variances)),
        fit_days=n,
    )


def hmm_switch_from(
    close: pd.Series,
    hmm: ReturnHMM,
    target: float = 0.15,
    window: int = 60,
    max_leverage: float = 1.0,
) -> pd.Series:
    """``vol_target_weights`` where the filtered ``P(calm) > 0.5``, else 0, under a fitted HMM."""
    calm = hmm.calm_probability(close).to_numpy()
    scale = vol_target_weights(close, target, window, max_leverage).to_numpy()
    return pd.Series(np.where(calm > 0.5, scale, 0.0), index=close.index, name="hmm_switch")


def hmm_switch_weights(
    close: pd.Series,
    fit_end: dt.date | str | pd.Timestamp,
    target: float = 0.15,
    window: int = 60,
    max_leverage: float = 1.0,
    seed: int = 0,
    n_iter: int = 100,
    min_fit_days: int = 250,
) -> pd.Series:
    """The HMM switch on ``close``, its HMM fitted on the closes dated up to ``fit_end`` only.

    Args:
        close: Closes on a sorted date index.
        fit_end: Last date the HMM is fitted on (the end of the training split).
        target: Annualised volatility aimed for while calm.
        window: Daily log returns in the volatility estimate.
        max_leverage: Largest weight.
        seed: Seed of the fit.
        n_iter: Most EM iterations.
        min_fit_days: Fewest returns up to ``fit_end``.

    Returns:
        The weight decided after each day's close, on ``close``'s index.
    """
    train = close.loc[close.index <= pd.Timestamp(fit_end)]
    hmm = fit_return_hmm(train, seed, n_iter, min_fit_days)
    return hmm_switch_from(close, hmm, target, window, max_leverage)
