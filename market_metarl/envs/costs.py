"""The one cost model, used by the simulator, the backtest and paper trading alike.

It is built from a :class:`~market_metarl.types.CostSpec`.

Costs of one rebalance, in account currency, for a book with equity ``E`` (before the trade) moving
from pre-trade weights ``u`` to target weights ``w``; the traded notional of asset ``i`` is
``q_i = |w_i - u_i| * E``:

    proportional  = rate * sum_i q_i                          rate = (fee_bps + slippage_bps) 1e-4
    min fee       = sum_i [q_i > 0] * max(min_fee - fee * q_i, 0)   tops each order's commission up
    impact        = sum_i impact_coef * sqrt(q_i / adv_i) * q_i     square-root law, adv in currency
    borrow        = borrow_daily * sum_i max(-w_i, 0) * E            borrow_daily = bps_annual 1e-4 / 252

``adv_i`` is the trailing average dollar volume (:func:`trailing_adv`, causal: it uses days up to the
decision day only). The proportional and borrow terms are exactly those of
:mod:`market_metarl.envs.accounting` (a test checks it); the minimum fee and the impact depend on
the account's size, not on weights alone, so they exist only here and in the simulator.

Every method works on Python floats (one asset, one book: the fast path of the single env) and on
numpy arrays ``(..., N)`` with the same expressions; no branch depends on the type except the sum
over assets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from market_metarl.types import TRADING_DAYS_PER_YEAR, CostSpec

X = TypeVar("X", float, np.ndarray, Any)

ADV_WINDOW = 20
"""Trailing days of the average dollar volume used by the impact term."""

ORDER_TOLERANCE = 1e-12
"""Traded notional, in account currency, below which no order is sent (and no minimum fee)."""


def relu(x: X) -> X:
    """``max(x, 0)`` for floats and arrays alike (the same expression as ``accounting``)."""
    return (x + abs(x)) * 0.5


def sum_assets(x: X) -> X:
    """Sum over the asset axis, keeping it (``(..., N) -> (..., 1)``); identity for a float."""
    if isinstance(x, np.ndarray):
        return x.sum(-1, keepdims=True)
    return x


def trailing_adv(close: np.ndarray, volume: np.ndarray, window: int = ADV_WINDOW) -> np.ndarray:
    """Trailing mean dollar volume ``mean(close * volume)`` over the last ``window`` days.

    Causal: row ``t`` uses rows ``t-window+1 .. t`` (fewer at the start). Works along axis 0.
    """
    dollar = np.asarray(close, dtype=np.float64) * np.asarray(volume, dtype=np.float64)
    csum = np.cumsum(dollar, axis=0)
    out = csum.copy()
    out[window:] = csum[window:] - csum[:-window]
    counts = np.minimum(np.arange(1, len(dollar) + 1), window).astype(np.float64)
    counts = counts.reshape((-1,) + (1,) * (dollar.ndim - 1))
    return out / counts


def inverse_adv(adv: np.ndarray) -> np.ndarray:
    """``1 / adv`` with 0 where the volume is unknown (0): the impact term is then skipped."""
    adv = np.asarray(adv, dtype=np.float64)
    out = np.zeros_like(adv)
    np.divide(1.0, adv, out=out, where=adv > 0)
    return out


@dataclass(frozen=True)
class CostModel:
    """Costs of trading, in currency, for one rebalance.

    Attributes:
        rate: Proportional cost (fee + slippage) per unit of traded notional.
        fee_rate: The commission part of ``rate`` (what the minimum fee tops up).
        min_fee: Minimum commission per order, in currency (0 disables it).
        borrow_daily: Daily cost per unit of short notional.
        impact_coef: Square-root impact coefficient (0 disables it).
    """

    rate: float
    fee_rate: float = 0.0
    min_fee: float = 0.0
    borrow_daily: float = 0.0
    impact_coef: float = 0.0

    @classmethod
    def from_spec(cls, spec: CostSpec, periods_per_year: int = TRADING_DAYS_PER_YEAR) -> CostModel:
        """The cost model of a :class:`CostSpec`; borrow is annual bps / ``periods_per_year``."""
        return cls(
            rate=spec.proportional_rate,
            fee_rate=spec.fee_bps * 1e-4,
            min_fee=float(spec.min_fee),
            borrow_daily=spec.borrow_bps_annual * 1e-4 / periods_per_year,
            impact_coef=float(spec.impact_coef),
        )

    @property
    def weight_only(self) -> bool:
        """True when costs depend on weights alone (no minimum fee, no impact)."""
        return self.min_fee == 0 and self.impact_coef == 0

    def order_costs(self, notional: X, inv_adv: X | float = 0.0) -> X:
        """Cost of each order of traded notional ``notional >= 0``, per asset (not summed).

        Args:
            notional: Traded notional per asset, in currency (a float or ``(..., N)``).
            inv_adv: ``1 / adv`` per asset (:func:`inverse_adv`); 0 skips the impact.
        """
        per_order = self.rate * notional
        if self.min_fee:
            topped = relu(self.min_fee - self.fee_rate * notional)
            per_order = per_order + topped * (notional > ORDER_TOLERANCE)
        if self.impact_coef:
            per_order = per_order + self.impact_coef * (notional * inv_adv) ** 0.5 * notional
        return per_order

    def trade_cost(self, notional: X, inv_adv: X | float = 0.0) -> X:
        """:meth:`order_costs` summed over assets: a float, or ``(..., 1)`` for arrays."""
        return sum_assets(self.order_costs(notional, inv_adv))

    def borrow_cost(self, target: X, equity: X | float) -> X:
        """Daily borrow on the short notional of the target weights, summed over assets."""
        return self.borrow_daily * sum_assets(relu(-target)) * equity

    def rebalance_cost(
        self,
        equity: Any,
        pre_weights: Any,
        target_weights: Any,
        inv_adv: Any = 0.0,
    ) -> Any:
        """Total cost, in currency, of moving from ``pre_weights`` to ``target_weights``.

        Equals ``trade_cost(|w - u| * equity) + borrow_cost(w, equity)`` (one sum over assets).

        Args:
            equity: Equity before the trade (a float, or ``(..., 1)`` for arrays).
            pre_weights: Weights held just before the trade (``u``, after the overnight drift).
            target_weights: Target weights ``w``.
            inv_adv: ``1 / adv`` per asset (see :func:`inverse_adv`), or 0.

        Returns:
            Trading cost plus the day's borrow, a float or ``(..., 1)``.
        """
        per_asset = self.order_costs(abs(target_weights - pre_weights) * equity, inv_adv)
        if self.borrow_daily:
            short = (abs(target_weights) - target_weights) * 0.5
            per_asset = per_asset + self.borrow_daily * short * equity
        return sum_assets(per_asset)
