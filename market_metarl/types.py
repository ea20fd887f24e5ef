"""Shared records and errors. Imports no layer.

Everything here is a plain, frozen value: tasks, regimes and settings can be hashed, compared,
written to TOML and rebuilt, so environments are always built fresh from them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import pandas as pd

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Columns of the canonical bars frame, in order (index: tz-naive ``DatetimeIndex`` named ``date``)."""

TRADING_DAYS_PER_YEAR = 252
"""Default ``periods_per_year`` for daily US equity bars. Always passed explicitly to metrics."""

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


class MarketMetaRLError(Exception):
    """Base of the errors a user can fix. The CLI prints them as one line and exits with 2."""


class DataError(MarketMetaRLError, ValueError):
    """Market data is missing, malformed or unsuitable: says what, where and how to fix it."""


class ConfigError(MarketMetaRLError, ValueError):
    """A configuration value is invalid: names the field, what came and what is allowed."""


class RunError(MarketMetaRLError, ValueError):
    """A run directory or checkpoint is missing, corrupt, or from something else."""


@dataclass(frozen=True)
class CostSpec:
    """Trading costs, in basis points of traded notional unless stated.

    Attributes:
        fee_bps: Commission per unit of traded notional.
        slippage_bps: Half-spread plus slippage paid on every fill, against us.
        min_fee: Minimum commission per order in account currency (0 disables it).
        borrow_bps_annual: Annual cost of short exposure, charged daily on the short notional.
        impact_coef: Square-root market impact coefficient: extra cost in bps is
            ``impact_coef * sqrt(traded_notional / adv_notional) * 1e4`` (0 disables it).
    """

    fee_bps: float = 1.0
    slippage_bps: float = 2.0
    min_fee: float = 0.0
    borrow_bps_annual: float = 50.0
    impact_coef: float = 0.0

    def __post_init__(self) -> None:
        """Reject a negative or NaN cost (``0`` is how a cost is disabled)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or value != value or value < 0:
                raise ConfigError(
                    f"costs.{f.name} must be a non-negative number, got {value!r}; "
                    "use 0 to disable that cost"
                )

    @property
    def proportional_rate(self) -> float:
        """Fee plus slippage as a fraction of traded notional (what the pathwise PnL uses)."""
        return (self.fee_bps + self.slippage_bps) * 1e-4


@dataclass(frozen=True)
class Regime:
    """A labelled span of one symbol's history, both ends inclusive."""

    symbol: str
    start: pd.Timestamp
    end: pd.Timestamp
    label: str
    method: str

    def as_row(self) -> dict[str, Any]:
        """The regime as a table row (dates as ISO strings), as :func:`regimes_to_frame` writes it."""
        return {
            "symbol": self.symbol,
            "start": self.start.date().isoformat(),
            "end": self.end.date().isoformat(),
            "label": self.label,
            "method": self.method,
        }


@dataclass(frozen=True)
class TaskSpec:
    """One task: a symbol (or several) over a date window, labelled with its regime.

    Frozen and hashable, so it can key caches and be sent to workers. Environments are built fresh
    from a TaskSpec; nothing mutates a task.

    Attributes:
        source: Source spec of the bars, e.g. ``"bundled:SPY"`` or ``"synthetic:ar-regimes?seed=3"``.
        symbol: The symbol traded.
        start: First bar of the task (inclusive).
        end: Last bar of the task (inclusive).
        label: Regime label, e.g. ``"bull-calm"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        costs: Trading costs.
        warmup_days: Bars before ``start`` the observation window may read (never traded).
        params: Known generating parameters (synthetic tasks only), as sorted ``(name, value)``.
    """

    source: str
    symbol: str
    start: dt.date
    end: dt.date
    label: str = "unlabelled"
    split: Split = "train"
    costs: CostSpec = field(default_factory=CostSpec)
    warmup_days: int = 0
    params: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        """Reject a window that ends before it starts, or an unknown split."""
        if self.end < self.start:
            raise ConfigError(
                f"task {self.symbol}: end {self.end} is before start {self.start}; swap them"
            )
        if self.split not in SPLITS:
            raise ConfigError(f"task split must be one of {SPLITS}, got {self.split!r}")

    @property
    def name(self) -> str:
        """``SYMBOL:START..END:LABEL``, a readable id for logs and tables."""
        return f"{self.symbol}:{self.start}..{self.end}:{self.label}"

    def param(self, name: str) -> float:
        """Value of a known generating parameter (synthetic tasks)."""
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(f"task {self.name} has no parameter {name!r}; it has {dict(self.params)}")

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON-ready values (dates ISO, ``params`` a dict); costs nested as a dict."""
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat()
        d["params"] = dict(self.params)
        return d
