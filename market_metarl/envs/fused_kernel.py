"""One batched env step as a single loop over books, compiled with numba when it is installed.

:func:`fused_step` does, book by book, what :class:`~market_metarl.envs.vector_env.BatchedTradingEnv`
does with some forty whole-array numpy calls: map the action to target weights
(:class:`~market_metarl.envs.actions.ActionMap`), trade at the next open and mark at its close
(:func:`~market_metarl.envs.simulator.rebalance_and_mark` with the
:class:`~market_metarl.envs.costs.CostModel` terms), the log return, drawdown, reward component and
episode ends, the NEXT_STEP autoreset, and the observation gather. Every expression is written in
the same order as there, so the numbers agree to the last bit for one asset and to rounding of
the asset sums (numpy sums pairwise) for several; ``tests/envs/test_fused_env.py`` checks it.

The function is plain Python that numba compiles (``nopython``, no fastmath, so IEEE semantics are
kept); :func:`compiled_kernel` returns the compiled function, or None when numba is not installed
(the ``fast`` extra), and the env then falls back to numpy (:mod:`market_metarl.envs.fused`).

One pass over the books does each book's whole step (action, trade, score or reset, observation),
so its state, prices and window are read once, while they are in cache, and the CPU is asked to
fetch the prices and window of the book a few places ahead (:data:`PREFETCH_AHEAD`) meanwhile.

Arguments of :func:`fused_step`:

- ``actions``: ``(B,)`` int64 discrete actions or ``(B, N)`` float64 target weights.
- ``p = (prices, rates, levels, windows, first, span, last, block, width)``: ``prices``
  ``(B, T, 2N+1)``, or ``(B, T, 3N+1)`` with market impact, float64: row ``[b, t]`` holds the N
  opens and N closes of day ``t``, the N ``1/adv`` of day ``t-1`` (impact only) and day ``t``'s
  date as days since 1970, so one book's day is one cache line; the cost model's five rates; the
  discrete levels; the flat float32 buffer under the observation windows (the window of book
  ``b`` at day ``t`` starts at ``b * block + t * width``); ``first`` ``(B,)``, span (float
  ``(B,)``) and ``last`` ``(B,)`` rows of each task.
- ``st = (cash, shares, t, equity, costs_paid, turnover_paid, peak, drawdown, reward_a,
  reward_b, needs_reset)``, updated in place: ``cash`` ``(B, 1)``, ``shares`` ``(B, N)``, ``t``
  int64 and ``needs_reset`` bool ``(B,)``, the rest float ``(B,)``.
- ``cfg = (low, high, reward_code, reward_param, initial_cash, ruin_level, max_dd,
  include_time)`` as floats.
- ``starts``: day index of each book's next episode (read for books being reset).
- ``out = (obs, reward, terminated, truncated, equity, position, cost, turnover, date, targets,
  scratch)``: the outputs (written for every book), then two ``(N,)`` float64 buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

try:  # the `fast` extra: helpers callable from compiled code, plain functions otherwise
    from numba.extending import register_jitable
except ImportError:  # pragma: no cover - exercised where numba is absent

    def register_jitable(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        """Without numba, the helpers stay plain Python functions."""
        return lambda fn: fn


from market_metarl.envs.costs import ORDER_TOLERANCE
from market_metarl.envs.rewards import DSR_VAR_FLOOR
from market_metarl.envs.trading_env import LOG_RETURN_FLOOR


def _prefetch_intrinsic() -> Any:
    """``prefetch(a, i)``: ask the CPU to start loading the cache line of ``a[i]`` (1-D ``a``).

    A hint only (``llvm.prefetch``: read, keep in all cache levels): no effect on any value. The
    gather jumps from book to book, which the hardware prefetcher cannot guess; asking a few books
    ahead overlaps those misses with the current book's work. A no-op without numba.
    """
    try:
        from llvmlite import ir
        from numba.core import cgutils, types
        from numba.extending import intrinsic
    except ImportError:  # pragma: no cover - exercised where numba is absent
        return lambda a, i: None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], arr, [args[1]])
        ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        name = "llvm.prefetch.p0" if getattr(ptr.type, "is_opaque", False) else "llvm.prefetch.p0i8"
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), name
        )
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    def prefetch(typingctx: Any, a: Any, i: Any) -> Any:
        return types.void(a, i), codegen

    return intrinsic(prefetch)


prefetch = _prefetch_intrinsic()
PREFETCH_AHEAD = 4
"""Books ahead whose window the kernel asks for (4-8 measured best at B=1024 on a 2-core Xeon)."""


REWARD_CODES = {"log_return": 0, "drawdown_penalised": 1, "differential_sharpe": 2}
"""The reward component's name -> the integer the kernel branches on."""


@register_jitable(inline="always")
def _check(actions: Any, n_levels: int, needs_reset: Any) -> int:
    """-1, or the first book not being reset whose discrete action is out of range."""
    for b in range(len(actions)):
        if not needs_reset[b] and (actions[b] < 0 or actions[b] >= n_levels):
            return b
    return -1


@register_jitable(inline="always")
def _target(actions: Any, low: float, high: float, b: int, w: Any) -> None:
    """Target weights ``(N,)`` of book ``b`` from continuous actions (ActionMap's expressions)."""
    gross = 0.0
    for i in range(len(w)):
        x = min(max(np.float64(actions[b, i]), low), high)  # np.clip: max, then min
        w[i] = x
        gross += abs(x)
    if gross > high:
        scale = high / max(gross, 1e-300)
        for i in range(len(w)):
            w[i] = w[i] * scale


@register_jitable(inline="always")
def _costs(eo: float, pre: Any, w: Any, adv: Any, rates: Any) -> tuple[float, float]:
    """``CostModel.rebalance_cost`` and the turnover of one book (``adv``: its prices row)."""
    rate, fee_rate, min_fee, borrow, impact = rates[0], rates[1], rates[2], rates[3], rates[4]
    er = (eo + abs(eo)) * 0.5
    n = len(pre)
    cost = turnover = 0.0
    for i in range(n):
        notional = abs(w[i] - pre[i]) * er
        per = rate * notional
        if min_fee != 0.0:
            x = min_fee - fee_rate * notional
            per = per + (x + abs(x)) * 0.5 * (1.0 if notional > ORDER_TOLERANCE else 0.0)
        if impact != 0.0:  # 1/adv at row[2N:3N]
            per = per + impact * math.sqrt(notional * adv[2 * n + i]) * notional
        if borrow != 0.0:
            per = per + borrow * ((abs(w[i]) - w[i]) * 0.5) * er
        cost = per if i == 0 else cost + per  # numpy's order for fewer than 8 assets
        d = abs(w[i] - pre[i])
        turnover = d if i == 0 else turnover + d
    return cost, turnover


@register_jitable(inline="always")
def _trade(row: Any, rates: Any, cash: Any, shares: Any, w: Any, pre: Any, b: int) -> Any:
    """:func:`rebalance_and_mark` for book ``b`` on its next day's ``row``.

    Sets cash and shares in place; returns the equity at the close, the cost and the turnover.
    """
    n = len(w)
    held = 0.0
    for i in range(n):
        x = shares[b, i] * row[i]
        pre[i] = x
        held = x if i == 0 else held + x
    eo = cash[b, 0] + held
    for i in range(n):
        pre[i] = pre[i] / eo
    cost, turnover = _costs(eo, pre, w, row, rates)
    ea = eo - cost
    spent = marked = 0.0
    for i in range(n):
        shares[b, i] = w[i] * ea / row[i]
        x, y = shares[b, i] * row[i], shares[b, i] * row[n + i]
        spent = x if i == 0 else spent + x
        marked = y if i == 0 else marked + y
    cash[b, 0] = ea - spent
    return cash[b, 0] + marked, cost, turnover


@register_jitable(inline="always")
def _reward(code: int, eta: float, log_ret: float, dd: float, prev: float, ra: Any, rb: Any, b: int) -> float:  # fmt: skip
    """The reward component of book ``b`` (and the differential Sharpe's moments in place)."""
    if code == 0:
        return log_ret
    if code == 1:
        x = dd - prev
        return log_ret - eta * ((x + abs(x)) * 0.5)
    a, m = ra[b], rb[b]  # differential Sharpe, DifferentialSharpe's expressions
    d_a, d_b, var = log_ret - a, log_ret * log_ret - m, m - a * a
    y = var - DSR_VAR_FLOOR
    safe = DSR_VAR_FLOOR + (y + abs(y)) * 0.5
    mask = 1.0 if var > DSR_VAR_FLOOR else 0.0
    ra[b], rb[b] = a + eta * d_a, m + eta * d_b
    return (m * d_a - 0.5 * a * d_b) / safe**1.5 * mask


@register_jitable(inline="always")
def _copy(windows: Any, start: int, obs: Any, b: int) -> None:
    """Row ``b`` of ``obs`` from the flat windows buffer at ``start`` (state slots overwritten later)."""
    row, src = obs[b], windows[start : start + obs.shape[1]]
    for k in range(len(row)):  # a constant start: LLVM vectorises this, not range(slots, dim)
        row[k] = src[k]


def fused_step(actions: Any, p: Any, st: Any, cfg: Any, starts: Any, out: Any) -> int:
    """Step every book once; -1, or the first book whose discrete action is out of range.

    On a bad action nothing has changed. The arguments are laid out in the module docstring.
    """
    prices, rates, levels, windows, first, span, last, block, width = p
    cash, shares, t, equity, costs_paid, turnover_paid, peak, drawdown, ra, rb, ended = st
    obs, reward, terminated, truncated, eq_out, position, cost_out, turn_out, days, w, pre = out
    low, high, code, eta, init, ruin, max_dd, with_time = cfg
    if actions.ndim == 1:
        bad = _check(actions, len(levels), ended)
        if bad >= 0:
            return bad
    n, date, ahead = shares.shape[1], prices.shape[2] - 1, PREFETCH_AHEAD
    for b in range(len(t)):
        if b + ahead < len(t):  # that book's next day and the window it will read after it
            nxt = (b + ahead) * block + (t[b + ahead] + 1) * width
            for k in range(0, obs.shape[1] + 16, 16):  # 16 float32: one 64-byte line
                prefetch(windows, nxt + k)
            day = prices[b + ahead, t[b + ahead] + 1]
            prefetch(day, 0)
            prefetch(day, len(day) - 1)  # the row may straddle two lines
        if ended[b]:  # ended at the last step: a fresh all-cash book, its action ignored
            t[b], cash[b, 0], equity[b], peak[b], drawdown[b] = starts[b], init, init, init, 0.0
            costs_paid[b] = turnover_paid[b] = ra[b] = rb[b] = 0.0
            shares[b, :] = position[b, :] = 0.0
            reward[b] = cost_out[b] = turn_out[b] = 0.0
            terminated[b] = truncated[b] = ended[b] = False
        else:
            if actions.ndim == 1:
                w[0] = levels[actions[b]]
            else:
                _target(actions, low, high, b, w)
            eq, cost, turnover = _trade(prices[b, t[b] + 1], rates, cash, shares, w, pre, b)
            for i in range(n):
                position[b, i] = shares[b, i] * prices[b, t[b] + 1, n + i] / eq
            growth = eq / equity[b]
            t[b], equity[b] = t[b] + 1, eq
            costs_paid[b] += cost
            turnover_paid[b] += turnover
            cost_out[b], turn_out[b] = cost, turnover
            log_ret = math.log(growth) if growth > 0 else LOG_RETURN_FLOOR
            prev_dd = drawdown[b]
            peak[b] = peak[b] if peak[b] >= eq else eq
            dd = drawdown[b] = 1.0 - eq / peak[b]
            reward[b] = _reward(int(code), eta, log_ret, dd, prev_dd, ra, rb, b)
            terminated[b], truncated[b] = (eq < ruin) | (dd > max_dd), t[b] >= last[b]
            ended[b] = terminated[b] | truncated[b]
        _copy(windows, b * block + t[b] * width, obs, b)
        for i in range(n):
            obs[b, i] = position[b, i]
        if with_time != 0.0:
            obs[b, n] = (t[b] - first[b]) / span[b]
        eq_out[b], days[b] = equity[b], np.int64(prices[b, t[b], date])
    return -1


@cache
def compiled_kernel() -> Callable[..., int] | None:
    """:func:`fused_step` compiled by numba (``nopython``, cached on disk), or None without numba.

    The first call per argument types compiles (seconds); later ones reuse the machine code.
    """
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True)(fused_step)
