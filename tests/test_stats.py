"""Bootstrap intervals, P(A beats B) and the deflated Sharpe ratio."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from market_metarl.meta.evaluation import bootstrap_mean, task_sharpe
from market_metarl.stats import (
    EULER_GAMMA,
    bootstrap_ci,
    circular_block_indices,
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    paired_block_bootstrap,
    prob_beats,
    sharpe,
)


def _runs(n_tasks: int, n_seeds: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.normal(0.0005 * (t % 3), 0.01, 40) for _ in range(n_seeds)] for t in range(n_tasks)
    ]


def _sharpe(r: np.ndarray) -> float:
    return sharpe(r, 252)


def test_ci_contains_point_and_shrinks_with_more_tasks() -> None:
    few = bootstrap_ci(_runs(8, 3), _sharpe, np.random.default_rng(0), n_boot=400)
    many = bootstrap_ci(_runs(128, 3), _sharpe, np.random.default_rng(0), n_boot=400)
    for ci in (few, many):
        assert ci.low <= ci.point <= ci.high
    assert (many.high - many.low) < 0.5 * (few.high - few.low)


def test_bootstrap_is_seeded_and_stratified() -> None:
    runs = _runs(10, 2)
    strata = ["A"] * 5 + ["B"] * 5
    a = bootstrap_ci(runs, _sharpe, np.random.default_rng(1), 200, strata=strata)
    b = bootstrap_ci(runs, _sharpe, np.random.default_rng(1), 200, strata=strata)
    assert a == b
    # One task per stratum and one seed: every replicate is the data itself.
    single = [[np.array([0.01, -0.005, 0.002])], [np.array([0.0, 0.003, -0.001])]]
    ci = bootstrap_ci(single, _sharpe, np.random.default_rng(0), 50, strata=["A", "B"])
    assert ci.low == pytest.approx(ci.point) and ci.high == pytest.approx(ci.point)


def test_prob_beats_paired_by_task() -> None:
    a = [np.array([2.0]), np.array([1.0]), np.array([0.5])]
    b = [np.array([1.0]), np.array([1.0]), np.array([0.7])]
    p = prob_beats(a, b, np.random.default_rng(0), 200)
    assert p.point == pytest.approx((1 + 0.5 + 0) / 3)
    assert p.low <= p.point <= p.high
    # Over seeds: the Mann-Whitney probability on each task.
    p2 = prob_beats([np.array([1.0, 3.0])], [np.array([2.0, 2.0])], np.random.default_rng(0), 10)
    assert p2.point == pytest.approx(0.5)


def test_deflated_sharpe_paper_example() -> None:
    """Bailey & López de Prado (2014), section 4: SR0 = 0.1132, DSR = 0.9004."""
    sr = 2.5 / math.sqrt(250)
    var = 0.5 / 250
    assert expected_max_sharpe(100, var) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe(sr, 1250, 100, var, skew=-3, kurtosis=10) == pytest.approx(
        0.9004, abs=5e-4
    )


def test_deflated_sharpe_by_hand() -> None:
    sr, n_obs, n_trials, var, skew, kurt = 0.08, 500, 7, 0.0009, 0.3, 5.0
    z, phi = NormalDist().inv_cdf, NormalDist().cdf
    sr0 = math.sqrt(var) * (
        (1 - EULER_GAMMA) * z(1 - 1 / n_trials) + EULER_GAMMA * z(1 - 1 / (n_trials * math.e))
    )
    by_hand = phi(
        (sr - sr0) * math.sqrt(n_obs - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    )
    assert deflated_sharpe(sr, n_obs, n_trials, var, skew, kurt) == pytest.approx(
        by_hand, rel=1e-12
    )
    # One trial: the probabilistic Sharpe ratio against zero.
    assert deflated_sharpe(0.0, 100, 1, var) == pytest.approx(0.5)


def test_moments_of_normal_returns() -> None:
    r = np.random.default_rng(0).normal(0.001, 0.01, 200_000)
    sr, skew, kurt = moments(r)
    assert sr == pytest.approx(0.1, rel=0.05)
    assert abs(skew) < 0.05 and kurt == pytest.approx(3.0, abs=0.1)


def test_sharpe_convention_known_answers() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    assert sharpe(r, 252) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert sharpe(r, 12, risk_free=0.001) == pytest.approx(
        (r.mean() - 0.001) / r.std(ddof=1) * math.sqrt(12), rel=1e-12
    )
    assert math.isnan(sharpe(np.zeros(5), 252)) and math.isnan(sharpe(np.array([0.01]), 252))


def test_sweep_scores_with_the_backtests_sharpe() -> None:
    """A task's score is the Sharpe of its simple returns, as the backtest reports it."""
    log_daily = np.random.default_rng(2).normal(0.001, 0.02, 60)
    assert task_sharpe(log_daily) == pytest.approx(sharpe(np.expm1(log_daily), 252), rel=1e-12)
    assert task_sharpe(np.zeros(10)) == 0.0  # a flat book scores like no skill


def test_bootstrap_mean_is_the_one_bootstrap() -> None:
    scores = np.random.default_rng(4).normal(0.5, 1.0, (3, 20))
    lo, hi = bootstrap_mean(scores, n_boot=300, seed=5)
    runs = [[scores[s, t : t + 1] for s in range(3)] for t in range(20)]
    ci = bootstrap_ci(runs, lambda v: float(np.mean(v)), np.random.default_rng(5), 300)
    assert (lo, hi) == (ci.low, ci.high)
    assert lo <= scores.mean() == pytest.approx(ci.point) and scores.mean() <= hi


def test_circular_blocks_are_consecutive_days_wrapping_around() -> None:
    days = circular_block_indices(np.random.default_rng(0), 50, 20, 30)
    assert days.shape == (30, 50)
    steps = np.diff(days, axis=1) % 50
    # inside a block each day follows the previous one (mod n); blocks start at 0, 20, 40
    inside = np.ones(49, dtype=bool)
    inside[[19, 39]] = False
    assert (steps[:, inside] == 1).all()
    with pytest.raises(ValueError, match="block length"):
        circular_block_indices(np.random.default_rng(0), 10, 11, 5)


def test_paired_bootstrap_known_answers() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(0.0005, 0.01, 300)
    same = paired_block_bootstrap(a, a.copy(), np.random.default_rng(0), n_boot=300)
    for iv in (same.mean_diff, same.sharpe_diff):
        assert (iv.point, iv.low, iv.high) == (0.0, 0.0, 0.0)
    shifted = paired_block_bootstrap(a + 0.001, a, np.random.default_rng(0), n_boot=300)
    assert shifted.mean_diff.low == pytest.approx(0.001) and shifted.mean_diff.low > 0
    assert shifted.mean_diff.high == pytest.approx(0.001)
    assert shifted.sharpe_diff.low > 0
    assert shifted.sharpe_diff.point == pytest.approx(sharpe(a + 0.001, 252) - sharpe(a, 252))
    assert shifted.as_dict()["block_days"] == 20 and shifted.n_days == 300
    with pytest.raises(ValueError, match="same days"):
        paired_block_bootstrap(a, a[:-1], rng)


def _ar1(rng: np.random.Generator, n: int, phi: float, mu: float) -> np.ndarray:
    e = rng.normal(0.0, 0.01, n + 200)
    d = np.zeros_like(e)
    for t in range(1, len(e)):
        d[t] = phi * d[t - 1] + e[t]
    return mu + d[200:]


def test_paired_bootstrap_covers_the_mean_of_ar1_differences() -> None:
    """Blocks of 20 days cover the true mean about 95% of the time; i.i.d. days (block 1) do not."""
    rng = np.random.default_rng(7)
    mu, hits_block, hits_iid, trials = 0.0004, 0, 0, 150
    for _ in range(trials):
        d = _ar1(rng, 500, 0.5, mu)
        zero = np.zeros_like(d)
        blk = paired_block_bootstrap(d, zero, rng, n_boot=250, block=20).mean_diff
        iid = paired_block_bootstrap(d, zero, rng, n_boot=250, block=1).mean_diff
        hits_block += blk.low <= mu <= blk.high
        hits_iid += iid.low <= mu <= iid.high
    assert 0.88 <= hits_block / trials <= 0.99
    assert hits_iid / trials < 0.85
