"""The market simulator: explicit cash and (fractional) shares, fills at the next open.

Knows nothing of RL. A target weight decided after the close of day ``t`` is executed at the open
of day ``t+1``; costs (:class:`~market_metarl.envs.costs.CostModel`) are paid there, out of equity
before the trade, and the target weight applies to the equity after costs; the book is marked to
market at the close of ``t+1``. This is the convention of :mod:`market_metarl.envs.accounting`;
with no minimum fee and no impact the simulator reproduces ``accounting.growth_factors`` to float
precision (a test checks it). The minimum fee and the impact are charged in the same place, as
extra currency cost at the open, so they simply lower the equity the target weight applies to.

One day of bookkeeping is written once, in :func:`rebalance_and_mark`, with expressions that work
on Python floats and numpy arrays alike. :class:`MarketSimulator` runs it on ``(B, N)`` arrays (the
batched env, the portfolio env, B=1 included); :class:`ScalarSimulator` runs the very same function
on Python floats for one book of one asset, because numpy's per-call overhead on ``(1, 1)`` arrays
would make the single env several times slower than plain Python (a test checks both agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from market_metarl.envs.costs import CostModel, relu, sum_assets


def rebalance_and_mark(
    cash: Any,
    shares: Any,
    open_next: Any,
    close_next: Any,
    target: Any,
    costs: CostModel,
    inv_adv: Any = 0.0,
    total: Callable[[Any], Any] = sum_assets,
) -> tuple[Any, Any, Any, Any, Any]:
    """One day: trade to ``target`` weights at the open, pay costs, mark at the close.

    Shapes: floats (one book, one asset) or arrays where per-asset values are ``(..., N)`` and
    per-book values (``cash``, returned equity, cost, turnover) are ``(..., 1)``.

    Args:
        cash: Cash held at the previous close.
        shares: Shares held at the previous close.
        open_next: Open prices of the day traded.
        close_next: Close prices of that day.
        target: Target weights (of equity after costs).
        costs: The cost model.
        inv_adv: ``1 / adv`` per asset for the impact term (0 skips it).
        total: Sum over assets keeping the axis (:func:`sum_assets`); the scalar path passes
            ``float`` (one asset: the sum is the value), which skips a type check per sum.

    Returns:
        ``(cash, shares, equity, cost, turnover)`` after the close: cost in currency, turnover as
        traded weight ``sum_i |w_i - u_i|`` (``u``: the weights just before the trade).
    """
    held = shares * open_next
    equity_open = cash + total(held)
    pre = held / equity_open
    # A book wiped out overnight (equity <= 0, only possible with shorts or leverage) trades
    # nothing and pays nothing; its negative equity ends the episode (ruin).
    cost = costs.rebalance_cost(relu(equity_open), pre, target, inv_adv)
    equity_after = equity_open - cost
    new_shares = target * equity_after / open_next
    new_cash = equity_after - total(new_shares * open_next)
    equity = new_cash + total(new_shares * close_next)
    turnover = total(abs(target - pre))
    return new_cash, new_shares, equity, cost, turnover


@dataclass
class SimStep:
    """What one batched step did, per book ``(B,)`` unless stated.

    Attributes:
        equity: Equity at the close just marked.
        growth: Equity over that of the previous close.
        cost: Costs paid at the open, in currency.
        turnover: Traded weight ``sum_i |w_i - u_i|``.
        weights: Weights held at the close ``(B, N)`` (the targets after their intraday drift).
    """

    equity: np.ndarray
    growth: np.ndarray
    cost: np.ndarray
    turnover: np.ndarray
    weights: np.ndarray


class MarketSimulator:
    """B books over N assets, stepped together on ``(B, N)`` arrays.

    Each book ``b`` trades its own price series ``opens[b], closes[b]`` (``(B, T, N)``) and keeps
    its own day index, so books can be reset independently (the batched env's autoreset).

    Args:
        opens: Open prices ``(B, T, N)``.
        closes: Close prices ``(B, T, N)``.
        costs: The cost model.
        initial_cash: Cash of a fresh book.
        inv_adv: ``1 / adv`` ``(B, T, N)``, row ``t`` known at the close of ``t`` (None: no impact).
    """

    def __init__(
        self,
        opens: np.ndarray,
        closes: np.ndarray,
        costs: CostModel,
        initial_cash: float,
        inv_adv: np.ndarray | None = None,
    ) -> None:
        """Copy the prices to contiguous float64 and start all-cash books at day 0.

        Raises:
            ValueError: ``opens`` and ``closes`` are not both ``(B, T, N)``.
        """
        if opens.ndim != 3 or opens.shape != closes.shape:
            raise ValueError(
                f"opens and closes must both be (B, T, N), got {opens.shape} and {closes.shape}"
            )
        self.opens = np.ascontiguousarray(opens, dtype=np.float64)
        self.closes = np.ascontiguousarray(closes, dtype=np.float64)
        self.costs = costs
        self.initial_cash = float(initial_cash)
        self.inv_adv = None if costs.impact_coef == 0 or inv_adv is None else inv_adv
        b, t, n = opens.shape
        self._rows = np.arange(b)
        self._base = self._rows * t  # row of (b, day) in the (B*T, N) flat views
        self._flat_opens = self.opens.reshape(b * t, n)
        self._flat_closes = self.closes.reshape(b * t, n)
        self.t = np.zeros(b, dtype=np.int64)
        self.cash = np.full((b, 1), self.initial_cash)
        self.shares = np.zeros((b, n))
        self.equity = self.cash[:, 0].copy()
        self.costs_paid = np.zeros(b)
        self.turnover = np.zeros(b)

    @property
    def batch_size(self) -> int:
        """Number of books (B)."""
        return len(self._rows)

    def reset(self, start: int | np.ndarray, rows: np.ndarray | None = None) -> None:
        """Start fresh, all-cash books at day index ``start`` (for the ``rows`` mask, or all)."""
        sel = slice(None) if rows is None else rows
        self.t[sel] = start
        self.cash[sel] = self.initial_cash
        self.shares[sel] = 0.0
        self.equity[sel] = self.initial_cash
        self.costs_paid[sel] = 0.0
        self.turnover[sel] = 0.0

    def weights(self) -> np.ndarray:
        """Weights held at the current close ``(B, N)``."""
        closes = self._flat_closes.take(self._base + self.t, axis=0)
        return self.shares * closes / self.equity[:, None]

    def step(self, target: np.ndarray) -> SimStep:
        """Trade every book to ``target`` ``(B, N)`` at the next open and mark at its close."""
        nxt = self.t + 1
        flat = self._base + nxt
        open_next = self._flat_opens.take(flat, axis=0)
        close_next = self._flat_closes.take(flat, axis=0)
        inv_adv = 0.0 if self.inv_adv is None else self.inv_adv[self._rows, self.t]
        cash, shares, equity, cost, turnover = rebalance_and_mark(
            self.cash, self.shares, open_next, close_next, target, self.costs, inv_adv
        )
        growth = equity[:, 0] / self.equity
        self.cash, self.shares, self.t = cash, shares, nxt
        self.equity = equity[:, 0]
        self.costs_paid += cost[:, 0]
        self.turnover += turnover[:, 0]
        weights = shares * close_next / equity
        return SimStep(self.equity.copy(), growth, cost[:, 0], turnover[:, 0], weights)


class ScalarSimulator:
    """One book of one asset on Python floats: the single env's fast path.

    Same bookkeeping (:func:`rebalance_and_mark`) as :class:`MarketSimulator` with ``B = N = 1``.

    Args:
        opens: Open prices ``(T,)``.
        closes: Close prices ``(T,)``.
        costs: The cost model.
        initial_cash: Cash of a fresh book.
        inv_adv: ``1 / adv`` ``(T,)`` (None: no impact).
    """

    def __init__(
        self,
        opens: np.ndarray,
        closes: np.ndarray,
        costs: CostModel,
        initial_cash: float,
        inv_adv: np.ndarray | None = None,
    ) -> None:
        """Keep the prices as Python float lists (fast scalar indexing) and start an all-cash book."""
        self.opens: list[float] = np.asarray(opens, dtype=np.float64).tolist()
        self.closes: list[float] = np.asarray(closes, dtype=np.float64).tolist()
        self.costs = costs
        self.initial_cash = float(initial_cash)
        if costs.impact_coef == 0 or inv_adv is None:
            self.inv_adv: list[float] = [0.0] * len(self.opens)
        else:
            self.inv_adv = np.asarray(inv_adv, dtype=np.float64).tolist()
        self.t = 0
        self.cash = self.initial_cash
        self.shares = 0.0
        self.equity = self.initial_cash
        self.costs_paid = 0.0
        self.turnover = 0.0

    def reset(self, start: int) -> None:
        """Start a fresh, all-cash book at day index ``start``."""
        self.t = int(start)
        self.cash = self.initial_cash
        self.shares = 0.0
        self.equity = self.initial_cash
        self.costs_paid = 0.0
        self.turnover = 0.0

    def step(self, target: float) -> tuple[float, float, float, float]:
        """Trade to weight ``target`` at the next open, mark at its close.

        Returns:
            ``(growth, cost, turnover, weight)``: equity growth of the day, currency cost, traded
            weight, and the weight held at the close.
        """
        t = self.t + 1
        close_next = self.closes[t]
        cash, shares, equity, cost, turnover = rebalance_and_mark(
            self.cash,
            self.shares,
            self.opens[t],
            close_next,
            target,
            self.costs,
            self.inv_adv[t - 1],
        )
        growth = equity / self.equity
        self.cash, self.shares, self.equity, self.t = cash, shares, equity, t
        self.costs_paid += cost
        self.turnover += turnover
        return growth, cost, turnover, shares * close_next / equity
