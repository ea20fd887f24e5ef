"""The ``[backtest]`` table of a run's config: the baselines' settings and the paired bootstrap's.

Read by the backtest only (the other layers never look at it). Every key is optional; an unknown
key is an error that lists the valid ones (:func:`backtest_settings`). Example::

    [backtest]
    vol_target = 0.15      # annualised volatility the vol-scaled baselines aim for
    vol_window = 60        # days of daily log returns in their volatility estimate
    block_days = 20        # block length of the paired bootstrap over days
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from market_metarl.config import build
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class BacktestSettings:
    """Settings of the rule baselines and of the paired intervals (the ``[backtest]`` table).

    Attributes:
        vol_target: Annualised volatility ``sigma_target`` of ``vol_target``, ``tsmom``, ``macd``
            and ``hmm_switch``: each holds ``sigma_target / sigma_hat`` of the asset (times its
            signal), capped at the env's ``max_leverage``.
        vol_window: Trailing daily log returns in ``sigma_hat`` (their sample standard deviation,
            annualised with 252 days); no position until that many returns exist.
        tsmom_lookback: ``tsmom`` looks at the return from ``t - tsmom_lookback`` ...
        tsmom_skip: ... to ``t - tsmom_skip`` (12-1 months: 252 and 21 days).
        hmm_min_fit_days: Fewest daily returns dated up to the end of the run's training split
            that ``hmm_switch`` fits its HMM on; a traded asset with fewer there (e.g. listed
            later) gets the HMM fitted on the run's training symbols instead.
        hmm_seed: Seed of the HMM fit (k-means initialisation).
        hmm_iterations: Most EM iterations of the HMM fit.
        block_days: Block length in days of the paired circular block bootstrap over days
            (:func:`market_metarl.stats.paired_block_bootstrap`); shorter blocks understate the
            uncertainty of autocorrelated daily PnL.
    """

    vol_target: float = 0.15
    vol_window: int = 60
    tsmom_lookback: int = 252
    tsmom_skip: int = 21
    hmm_min_fit_days: int = 250
    hmm_seed: int = 0
    hmm_iterations: int = 100
    block_days: int = 20

    def __post_init__(self) -> None:
        """Check every value's range (the message names the key and how to fix it)."""
        if not self.vol_target > 0:
            raise ConfigError(
                f"backtest.vol_target must be > 0 (annualised, e.g. 0.15), got {self.vol_target}"
            )
        minimums = {
            "vol_window": 2,
            "tsmom_lookback": 2,
            "tsmom_skip": 0,
            "hmm_min_fit_days": 20,
            "hmm_seed": 0,
            "hmm_iterations": 1,
            "block_days": 1,
        }
        for key, low in minimums.items():
            if getattr(self, key) < low:
                raise ConfigError(f"backtest.{key} must be >= {low}, got {getattr(self, key)}")
        if self.tsmom_skip >= self.tsmom_lookback:
            raise ConfigError(
                f"backtest.tsmom_skip ({self.tsmom_skip}) must be below tsmom_lookback "
                f"({self.tsmom_lookback}); the default is 21 and 252 (12-1 months)"
            )


def backtest_settings(table: dict[str, Any] | None) -> BacktestSettings:
    """The settings of a ``[backtest]`` table (defaults for missing keys).

    Raises:
        ConfigError: An unknown key (the message lists the valid ones), a value of the wrong
            type, or one out of range.
    """
    return build(BacktestSettings, table, "backtest")
