"""``[paper]``: the settings of a paper account (rolling protocol and guardrails).

Read from the run's config when it has a ``[paper]`` table (strict keys), else the defaults. They
are resolved against the run (K defaults to its ``train.adapt_days``) and frozen into the
ledger's account at ``paper init``, so retraining or editing a run never changes a live account.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from market_metarl.config import build
from market_metarl.meta.allocation import check_allocation
from market_metarl.meta.contracts import check_adapt_days
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class PaperConfig:
    """``[paper]``: how a paper account adapts, trades and protects itself.

    Attributes:
        adapt_days: K, support days of each adaptation (0: the run's ``train.adapt_days``).
        every: R, trading days between adaptations (the default of ``backtest --every``).
        cash: Initial cash of a new account (``paper init --cash`` overrides it).
        max_gross: Largest gross exposure ``sum |w|``; larger targets are scaled down to it.
        max_turnover: Largest daily change ``sum |w - held|``; larger changes are scaled down.
        max_drawdown: Kill switch: when equity falls this fraction below its peak, the account is
            flattened and stops trading until ``paper reset`` (1.0 disables it).
        fallback: Track the pooled (non-adapted) policy in a shadow book and fall back to it when
            the adapted policy lags it (see ``fallback_window`` and ``fallback_lag``).
        fallback_window: Trading days over which the lag is measured.
        fallback_lag: Fall back when the account's log return over the window trails the shadow
            pooled book's by more than this.
        reconcile_tolerance: Kill switch: when the broker's shares and cash differ from the
            ledger's by more than this fraction of equity (checked at every step of an account
            on a real broker API), the account stops trading until ``paper reset``.
        allocation: A multi-asset account's capital split between its symbols: ``equal`` or
            ``inverse_vol`` (:mod:`market_metarl.meta.allocation`; a one-symbol account holds
            its whole capital in its symbol).
        vol_window: Sessions of daily log returns in ``inverse_vol``'s trailing volatility.
    """

    adapt_days: int = 0
    every: int = 20
    cash: float = 100_000.0
    max_gross: float = 1.0
    max_turnover: float = 2.0
    max_drawdown: float = 0.25
    fallback: bool = True
    fallback_window: int = 20
    fallback_lag: float = 0.05
    reconcile_tolerance: float = 0.001
    allocation: str = "equal"
    vol_window: int = 60

    def __post_init__(self) -> None:
        """Check every setting (a :class:`ConfigError` names the bad one)."""
        if self.adapt_days < 0:
            raise ConfigError("paper.adapt_days must be >= 0 (0: the run's train.adapt_days)")
        if self.every < 1:
            raise ConfigError(f"paper.every must be >= 1 trading day, got {self.every}")
        if self.adapt_days:  # 0: the run's train.adapt_days
            check_adapt_days(self.adapt_days, "paper.adapt_days (or 0 for the run's adapt_days)")
        if not 0 < self.cash < math.inf:
            raise ConfigError(f"paper.cash must be a finite amount > 0, got {self.cash}")
        for name in ("max_gross", "max_turnover", "fallback_lag", "reconcile_tolerance"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"paper.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.max_drawdown <= 1:
            raise ConfigError(
                f"paper.max_drawdown must be in (0, 1] (1 disables the kill switch), "
                f"got {self.max_drawdown}"
            )
        if self.fallback_window < 1:
            raise ConfigError(f"paper.fallback_window must be >= 1, got {self.fallback_window}")
        check_allocation(self.allocation)
        if self.vol_window < 2:
            raise ConfigError(f"paper.vol_window must be >= 2 sessions, got {self.vol_window}")

    def resolved(self, adapt_days: int) -> PaperConfig:
        """K filled in from the run's ``train.adapt_days`` where it is 0."""
        return dataclasses.replace(self, adapt_days=self.adapt_days or adapt_days)

    def to_json(self) -> str:
        """The settings as sorted JSON (stored in the ledger)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PaperConfig:
        """Settings read back from :meth:`to_json`."""
        return build(cls, json.loads(text), "paper")


def paper_config(config: dict[str, Any]) -> PaperConfig:
    """The ``[paper]`` table of a run's config (defaults when it has none)."""
    return build(PaperConfig, config.get("paper"), "paper")
