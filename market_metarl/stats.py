"""Statistics shared by the sweep and the backtest: the one Sharpe ratio and the one bootstrap.

A base module (pure numpy and the standard library; it imports no layer), so ``meta.evaluation``
and ``backtest`` score with the same functions and cannot drift apart.

- :func:`sharpe`: the annualised Sharpe ratio. Conventions: **simple** per-period returns
  (``E_t / E_{t-1} - 1``; convert log returns with ``np.expm1`` first), ``periods_per_year`` an
  argument (252 for US daily bars: :data:`market_metarl.types.TRADING_DAYS_PER_YEAR`), an explicit
  **per-period** risk-free rate (default 0), the sample standard deviation (``ddof=1``), and ``nan``
  when undefined (fewer than two returns, or no variance). It is empyrical's ``sharpe_ratio``,
  which the tests cross-check.
- :func:`bootstrap_ci`: a stratified percentile bootstrap in the spirit of rliable's interval
  estimates (Agarwal et al. 2021). Tasks are resampled with replacement *within each stratum*
  (e.g. each symbol keeps its number of tasks), then, within each drawn task, one seed's run is
  drawn; the statistic is recomputed on the pooled values of the draw (daily returns, or one
  score per task and seed). The interval is the percentile interval of the replicates; it
  narrows as tasks are added.
- :func:`prob_beats`: the probability that strategy A's per-task score beats B's on the same
  task (paired by task; over seeds it is the Mann-Whitney probability ``P(a > b) + P(a = b) / 2``),
  averaged over tasks, with the same bootstrap over tasks for its interval.
- :func:`deflated_sharpe`: Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting
  for Selection Bias, Backtest Overfitting and Non-Normality", eq. (2)-(3).
- :func:`paired_block_bootstrap`: intervals for the difference between two strategies' daily
  returns on the same days (A minus B): the mean daily difference and the Sharpe difference. Days
  are resampled with the circular block bootstrap of Politis & Romano (1992), "A Circular
  Block-Resampling Procedure for Stationary Data" (:func:`circular_block_indices`): blocks of
  ``block`` consecutive days, wrapped around the end, keep the serial dependence of daily PnL
  within a block; the *same* resampled days are used for A and B (paired), so what the two share
  (the market's moves) cancels. Shorter blocks understate the uncertainty of autocorrelated
  returns; block length 1 is the i.i.d. bootstrap.

Randomness comes from a ``numpy.random.Generator`` passed in; nothing touches global RNGs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def sharpe(returns: np.ndarray, periods_per_year: int, risk_free: float = 0.0) -> float:
    """Annualised Sharpe ratio: ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year)``.

    Args:
        returns: Simple per-period returns (not log returns).
        periods_per_year: Periods in a year.
        risk_free: Per-period simple risk-free rate.

    Returns:
        The ratio, or ``nan`` with fewer than two returns or a standard deviation under 1e-15.
    """
    excess = np.asarray(returns, dtype=np.float64).reshape(-1) - risk_free
    if len(excess) < 2:
        return math.nan
    sd = float(np.std(excess, ddof=1))
    if sd < 1e-15:
        return math.nan
    return float(np.mean(excess) / sd * math.sqrt(periods_per_year))


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    point: float
    low: float
    high: float
    level: float

    def as_dict(self) -> dict[str, float]:
        """The interval as ``{"point", "low", "high", "level"}`` (for JSON)."""
        return {"point": self.point, "low": self.low, "high": self.high, "level": self.level}


def _strata_indices(strata: Sequence[str] | None, n_tasks: int) -> list[np.ndarray]:
    labels = list(strata) if strata is not None else ["all"] * n_tasks
    if len(labels) != n_tasks:
        raise ValueError(f"{len(labels)} strata labels for {n_tasks} tasks")
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return [np.array(v) for v in groups.values()]


def resample_tasks(rng: np.random.Generator, groups: list[np.ndarray], n_boot: int) -> np.ndarray:
    """Task indices ``(n_boot, n_tasks)``: each stratum resampled with replacement, in place."""
    parts = [g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in groups]
    return np.concatenate(parts, axis=1)


def bootstrap_ci(
    runs: Sequence[Sequence[np.ndarray]],
    statistic: Callable[[np.ndarray], float],
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
    strata: Sequence[str] | None = None,
) -> Interval:
    """Stratified percentile bootstrap of a statistic of pooled values.

    Args:
        runs: ``runs[task][seed]``: the values of one task under one seed (its daily returns, or
            a one-element array holding its score).
        statistic: Maps pooled values to a number (e.g. a Sharpe ratio of daily returns, or the
            mean of scores).
        rng: Random generator (seeded by the caller).
        n_boot: Bootstrap replicates.
        level: Coverage of the interval.
        strata: One label per task; tasks are resampled within their label.

    Returns:
        The statistic of all runs pooled, and its percentile interval.
    """
    if not runs or any(len(seeds) == 0 for seeds in runs):
        raise ValueError("bootstrap_ci needs at least one task with at least one seed")
    point = statistic(np.concatenate([r for seeds in runs for r in seeds]))
    groups = _strata_indices(strata, len(runs))
    draws = resample_tasks(rng, groups, n_boot)
    seed_draws = rng.random(draws.shape)
    values = np.empty(n_boot)
    for b in range(n_boot):
        chosen = [
            runs[t][int(u * len(runs[t]))] for t, u in zip(draws[b], seed_draws[b], strict=True)
        ]
        values[b] = statistic(np.concatenate(chosen))
    return _interval(point, values, level)


def _interval(point: float, values: np.ndarray, level: float) -> Interval:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return Interval(point, math.nan, math.nan, level)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return Interval(float(point), float(low), float(high), level)


def _beats(a: np.ndarray, b: np.ndarray) -> float:
    """Mann-Whitney probability that a draw of ``a`` beats a draw of ``b`` (ties count half)."""
    diff = a[:, None] - b[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def prob_beats(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
    strata: Sequence[str] | None = None,
) -> Interval:
    """Probability that A beats B on a task, paired by task and averaged over tasks.

    Args:
        a: ``a[task]``: A's per-task scores, one per seed (nan scores are dropped).
        b: ``b[task]``: B's per-task scores on the same tasks.
        rng: Random generator.
        n_boot: Bootstrap replicates over tasks (stratified like :func:`bootstrap_ci`).
        level: Coverage of the interval.
        strata: One label per task.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"prob_beats needs the same tasks for both, got {len(a)} and {len(b)}")
    per_task = []
    for x, y in zip(a, b, strict=True):
        xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
        per_task.append(_beats(xs, ys) if len(xs) and len(ys) else 0.5)
    scores = np.array(per_task)
    draws = resample_tasks(rng, _strata_indices(strata, len(scores)), n_boot)
    return _interval(float(scores.mean()), scores[draws].mean(axis=1), level)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """``SR_0``: the expected maximum Sharpe ratio of ``n_trials`` unskilled trials.

    ``sqrt(V) * ((1 - gamma) * Z^-1(1 - 1/N) + gamma * Z^-1(1 - 1/(N e)))`` (Bailey & López de
    Prado 2014, eq. 2), in the units of the Sharpe ratios whose variance ``V`` is given; 0 for one
    trial (the deflated Sharpe ratio is then the probabilistic Sharpe ratio against 0).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1 or sharpe_variance <= 0:
        return 0.0
    z = _NORMAL.inv_cdf
    return math.sqrt(sharpe_variance) * (
        (1.0 - EULER_GAMMA) * z(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * z(1.0 - 1.0 / (n_trials * math.e))
    )


def deflated_sharpe(
    sharpe: float,
    n_obs: int,
    n_trials: int,
    sharpe_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Deflated Sharpe ratio: the probability that the true Sharpe ratio exceeds ``SR_0``.

    ``Z((SR - SR_0) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))`` (eq. 3), where every
    Sharpe ratio is **per period** (not annualised).

    Args:
        sharpe: Per-period Sharpe ratio of the selected strategy.
        n_obs: Number of returns ``T`` behind it.
        n_trials: Strategies tried (``N``).
        sharpe_variance: Variance of the per-period Sharpe ratios across the trials.
        skew: Skewness ``g3`` of the selected strategy's returns.
        kurtosis: Kurtosis ``g4`` (not excess: 3 for normal returns).
    """
    if n_obs < 2 or not math.isfinite(sharpe):
        return math.nan
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if denom <= 0:
        return math.nan
    return _NORMAL.cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def moments(returns: np.ndarray) -> tuple[float, float, float]:
    """``(per-period Sharpe, skewness, kurtosis)`` of returns.

    Skewness and kurtosis are population moments (kurtosis not excess: 3 for normal returns); the
    Sharpe ratio is not annualised and uses ``ddof=1``, as :func:`sharpe` does.
    """
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 3:
        return math.nan, 0.0, 3.0
    sd1 = float(np.std(r, ddof=1))
    sd0 = float(np.std(r))
    if sd0 < 1e-15:
        return math.nan, 0.0, 3.0
    z = (r - r.mean()) / sd0
    return float(r.mean() / sd1), float(np.mean(z**3)), float(np.mean(z**4))


_CHUNK = 256
"""Bootstrap replicates drawn at once by :func:`paired_block_bootstrap`."""


def circular_block_indices(rng: np.random.Generator, n: int, block: int, n_boot: int) -> np.ndarray:
    """Day indices ``(n_boot, n)`` of circular block bootstrap replicates (Politis & Romano 1992).

    Each replicate joins ``ceil(n / block)`` blocks of ``block`` consecutive days, each starting at
    a uniformly drawn day and wrapping from the last day to the first, cut to ``n`` days.

    Args:
        rng: Random generator (seeded by the caller).
        n: Days in the series.
        block: Days per block, ``1 <= block <= n``.
        n_boot: Replicates.

    Raises:
        ValueError: ``block`` outside ``1..n``.
    """
    if not 1 <= block <= n:
        raise ValueError(
            f"block length must be between 1 and the {n} day(s) of the series, got {block}; "
            "use a shorter block or a longer series"
        )
    n_blocks = -(-n // block)
    starts = rng.integers(0, n, size=(n_boot, n_blocks, 1))
    days = starts + np.arange(block)
    days[days >= n] -= n  # wrap around (every index is below 2n); cheaper than a modulo
    return days.reshape(n_boot, n_blocks * block)[:, :n]


@dataclass(frozen=True)
class PairedDifference:
    """Intervals of A minus B on the same days (see :func:`paired_block_bootstrap`).

    Attributes:
        mean_diff: Mean daily difference of simple returns, ``mean(a - b)`` (per day, not annualised).
        sharpe_diff: ``sharpe(a) - sharpe(b)``, both annualised (:func:`sharpe`).
        n_days: Days paired.
        block: Block length in days.
    """

    mean_diff: Interval
    sharpe_diff: Interval
    n_days: int
    block: int

    def as_dict(self) -> dict[str, object]:
        """The intervals as a JSON-ready dict."""
        return {
            "mean_daily_diff": self.mean_diff.as_dict(),
            "sharpe_diff": self.sharpe_diff.as_dict(),
            "n_days": self.n_days,
            "block_days": self.block,
        }


def paired_block_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    n_boot: int = 2000,
    block: int = 20,
    level: float = 0.95,
    periods_per_year: int = 252,
) -> PairedDifference:
    """Paired circular block bootstrap of A minus B: mean daily difference and Sharpe difference.

    Conventions: ``a`` and ``b`` are **simple** daily returns of two strategies on the same days
    (row ``i`` of both is the same day); the risk-free rate is 0; the Sharpe ratios are annualised
    with ``periods_per_year`` (:func:`sharpe`). Every replicate draws one set of days
    (:func:`circular_block_indices`) and evaluates both strategies on it. Intervals are percentile
    intervals; a replicate whose Sharpe difference is undefined (no variance) is dropped.

    Args:
        a: A's daily returns ``(n,)``.
        b: B's daily returns on the same days ``(n,)``.
        rng: Random generator (seeded by the caller).
        n_boot: Replicates.
        block: Block length in days (20 by default: about a trading month).
        level: Coverage of the intervals.
        periods_per_year: Periods in a year, for the Sharpe ratios.

    Returns:
        The point estimates on the observed days and their intervals.

    Raises:
        ValueError: ``a`` and ``b`` differ in length, ``n_boot`` is under 1, or ``block`` is
            outside ``1..n``.
    """
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"paired returns need the same days, got {len(x)} and {len(y)}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    mean_diff, sharpe_diff = np.empty(n_boot), np.empty(n_boot)
    for lo in range(0, n_boot, _CHUNK):  # chunks of replicates bound the memory of long series
        hi = min(lo + _CHUNK, n_boot)
        days = circular_block_indices(rng, len(x), block, hi - lo)
        xs, ys = x[days], y[days]
        mean_diff[lo:hi] = (xs - ys).mean(axis=1)
        sharpe_diff[lo:hi] = _sharpes(xs, periods_per_year) - _sharpes(ys, periods_per_year)
    point_sharpe = sharpe(x, periods_per_year) - sharpe(y, periods_per_year)
    return PairedDifference(
        _interval(float(np.mean(x - y)), mean_diff, level),
        _interval(point_sharpe, sharpe_diff, level),
        len(x),
        block,
    )


def _sharpes(rows: np.ndarray, periods_per_year: int) -> np.ndarray:
    """:func:`sharpe` of each row of ``rows`` (``nan`` where the standard deviation is < 1e-15)."""
    sd = rows.std(axis=1, ddof=1)
    safe = np.where(sd < 1e-15, np.nan, sd)
    return rows.mean(axis=1) / safe * math.sqrt(periods_per_year)
