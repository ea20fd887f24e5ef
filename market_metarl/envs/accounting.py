"""The one PnL accounting, written once for numpy arrays and torch tensors alike.

Timing (DESIGN.md): a target weight ``w[t]`` decided after the close of day ``t`` is executed at the
open of day ``t+1``, costs are charged there, and the book is marked to market at each close. Prices
do not react to our trades, so the growth of equity over a whole window is a pure function of the
weights. Day ``t+1`` earns:

    growth[t+1] = (1 + sum_i v_i[t] * (open_i[t+1]/close_i[t] - 1))        # overnight, old book
                * (1 - cost_rate * sum_i |w_i[t] - u_i[t]| - borrow[t])    # trade at the open
                * (1 + sum_i w_i[t] * (close_i[t+1]/open_i[t+1] - 1))      # intraday, new book

where ``v[t]`` is the weight held at the close of day ``t`` (the previous target after its intraday
drift), ``u[t]`` that weight after the overnight drift (what the book holds just before trading),
and ``borrow[t] = borrow_daily * sum_i max(-w_i[t], 0)``.

Cost convention: the cost of a rebalance is ``cost_rate`` times the change of weight times the equity
before the trade (``|w - u| * E_open``), and the target weight applies to the equity after costs. This
is the standard multiplicative form of portfolio accounting (e.g. Jiang et al. 2017); charging on the
exact post-cost notional differs by ``cost_rate * cost`` (second order, under 1e-6 a day at 10 bps)
and would make the path a recurrence that no longer vectorises over time. With it, the growth of a
book of fractional shares and cash is exact: the first-order form in DESIGN.md
(``w[t-1]*gap + w[t]*intraday - cost``) drops the products of returns and the drift of weights, which
matter for leveraged books over long windows.

The simulator (:mod:`market_metarl.envs.simulator`) keeps explicit cash and shares and reproduces
these numbers to float precision when there is no minimum fee and no market impact (the two costs
that depend on the account's size rather than on weights alone); a test checks it. The numpy and the
torch paths are the same expressions; a test checks they agree.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

Array = TypeVar("Array", Any, np.ndarray)


def _cat_first(first: Array, rest: Array, axis: int) -> Array:
    """Concatenate along ``axis`` for numpy arrays or torch tensors."""
    if isinstance(rest, np.ndarray):
        return np.concatenate([first, rest], axis=axis)
    import torch

    return torch.cat([first, rest], dim=axis)


def drift(weight: Array, ratio: Array) -> Array:
    """Weights after prices move by ``ratio`` (new/old price), per asset on the last axis."""
    grown = weight * ratio
    return grown / (1.0 + (weight * (ratio - 1.0)).sum(-1, keepdims=True))


def short_exposure(weight: Array) -> Array:
    """Total short weight ``sum_i max(-w_i, 0)`` (the same expression for numpy and torch)."""
    return ((abs(weight) - weight) * 0.5).sum(-1)


def growth_factors(
    weights: Array,
    opens: Array,
    closes: Array,
    cost_rate: float,
    borrow_daily: float = 0.0,
    w_init: Array | None = None,
) -> Array:
    """Equity growth of each day of a window, given the target weights.

    Args:
        weights: Target weights ``(..., T, N)``: row ``t`` is decided after the close of day ``t``.
        opens: Opens ``(..., T+1, N)`` of days ``0..T``.
        closes: Closes ``(..., T+1, N)`` of days ``0..T``.
        cost_rate: Proportional trading cost (fee + slippage) per unit of traded weight.
        borrow_daily: Daily cost per unit of short weight.
        w_init: Weights ``(..., 1, N)`` held at the close of day 0 (default: all cash).

    Returns:
        Growth factors ``(..., T)``: equity at the close of day ``t+1`` over that of day ``t``.
    """
    gap = opens[..., 1:, :] / closes[..., :-1, :]
    intraday = closes[..., 1:, :] / opens[..., 1:, :]
    intraday_prev = closes[..., :-1, :] / opens[..., :-1, :]
    if w_init is None:
        w_init = weights[..., :1, :] * 0.0
    # v[t]: the weight held at the close of day t. Day 0's book is w_init; later days hold the
    # previous target after its intraday drift.
    prev_targets = weights[..., :-1, :]
    v_rest = drift(prev_targets, intraday_prev[..., 1:, :])
    held_close = _cat_first(w_init, v_rest, axis=-2)
    pre_trade = drift(held_close, gap)
    overnight = 1.0 + (held_close * (gap - 1.0)).sum(-1)
    traded = abs(weights - pre_trade).sum(-1)
    trade = 1.0 - cost_rate * traded - borrow_daily * short_exposure(weights)
    intra = 1.0 + (weights * (intraday - 1.0)).sum(-1)
    return overnight * trade * intra


def log_returns(
    weights: Array,
    opens: Array,
    closes: Array,
    cost_rate: float,
    borrow_daily: float = 0.0,
    w_init: Array | None = None,
) -> Array:
    """Daily log returns of equity net of costs (``log`` of :func:`growth_factors`)."""
    g = growth_factors(weights, opens, closes, cost_rate, borrow_daily, w_init)
    if isinstance(g, np.ndarray):
        return np.log(g)
    return g.log()
