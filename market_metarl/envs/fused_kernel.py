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

State arrays are updated in place: ``t`` (int64 ``(B,)``), ``cash`` ``(B, 1)``, ``shares`` and
the outputs ``(B, N)``, the per-book floats ``(B,)``, ``needs_reset`` (bool ``(B,)``).
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

REWARD_CODES = {"log_return": 0, "drawdown_penalised": 1, "differential_sharpe": 2}
"""The reward component's name -> the integer the kernel branches on."""


@register_jitable
def _targets(actions: Any, levels: Any, low: float, high: float, skip: Any, w: Any) -> int:
    """Target weights ``(B, N)`` into ``w`` (ActionMap's expressions); -1 or the first bad book."""
    bad = -1
    for b in range(w.shape[0]):
        if skip[b]:
            continue
        if actions.ndim == 1:  # discrete: an index into the levels
            k = actions[b]
            if k < 0 or k >= len(levels):
                bad = b if bad < 0 else bad
                k = 0
            w[b, 0] = levels[k]
            continue
        gross = 0.0
        for i in range(w.shape[1]):
            x = min(max(np.float64(actions[b, i]), low), high)  # np.clip: max, then min
            w[b, i] = x
            gross += abs(x)
        if gross > high:
            scale = high / max(gross, 1e-300)
            for i in range(w.shape[1]):
                w[b, i] = w[b, i] * scale
    return bad


@register_jitable
def _costs(eo: float, pre: Any, w: Any, inv_adv: Any, b: int, rates: Any) -> tuple[float, float]:
    """``CostModel.rebalance_cost`` and the turnover of book ``b`` (``pre``, ``inv_adv``: ``(N,)``)."""
    rate, fee_rate, min_fee, borrow, impact = rates[0], rates[1], rates[2], rates[3], rates[4]
    er = (eo + abs(eo)) * 0.5
    cost = turnover = 0.0
    for i in range(len(pre)):
        notional = abs(w[b, i] - pre[i]) * er
        per = rate * notional
        if min_fee != 0.0:
            x = min_fee - fee_rate * notional
            per = per + (x + abs(x)) * 0.5 * (1.0 if notional > ORDER_TOLERANCE else 0.0)
        if impact != 0.0:
            per = per + impact * math.sqrt(notional * inv_adv[i]) * notional
        if borrow != 0.0:
            per = per + borrow * ((abs(w[b, i]) - w[b, i]) * 0.5) * er
        cost = per if i == 0 else cost + per  # numpy's order for fewer than 8 assets
        d = abs(w[b, i] - pre[i])
        turnover = d if i == 0 else turnover + d
    return cost, turnover


@register_jitable
def _trade(p: Any, st: Any, w: Any, pre: Any, skip: Any, out: Any) -> None:
    """:func:`rebalance_and_mark` for every book not in ``skip``: cash, shares, equity, t in place.

    Writes the equity growth into ``out[1]`` (the reward slot, turned into the reward later),
    cost, turnover and the weights at the close into their outputs.
    """
    opens, closes, inv_adv, rates = p[0], p[1], p[2], p[3]
    cash, shares, t, equity, costs_paid, turnover_paid = st[0], st[1], st[2], st[3], st[4], st[5]
    growth, position, cost_out, turn_out = out[1], out[5], out[6], out[7]
    impact = rates[4] != 0.0
    for b in range(len(t)):
        if skip[b]:
            continue
        nt = t[b] + 1
        held = 0.0
        for i in range(w.shape[1]):
            x = shares[b, i] * opens[b, nt, i]
            pre[i] = x
            held = x if i == 0 else held + x
        eo = cash[b, 0] + held
        for i in range(w.shape[1]):
            pre[i] = pre[i] / eo
        cost, turnover = _costs(eo, pre, w, inv_adv[b, nt - 1] if impact else pre, b, rates)
        ea = eo - cost
        spent = marked = 0.0
        for i in range(w.shape[1]):
            shares[b, i] = w[b, i] * ea / opens[b, nt, i]
            x, y = shares[b, i] * opens[b, nt, i], shares[b, i] * closes[b, nt, i]
            spent = x if i == 0 else spent + x
            marked = y if i == 0 else marked + y
        cash[b, 0] = ea - spent
        eq = cash[b, 0] + marked
        for i in range(w.shape[1]):
            position[b, i] = shares[b, i] * closes[b, nt, i] / eq
        growth[b] = eq / equity[b]
        t[b], equity[b] = nt, eq
        costs_paid[b] += cost
        turnover_paid[b] += turnover
        cost_out[b], turn_out[b] = cost, turnover


@register_jitable
def _score(st: Any, cfg: Any, last: Any, skip: Any, out: Any) -> None:
    """Log return, drawdown, reward (``out[1]`` holds the growth on entry) and episode ends."""
    t, equity, peak, drawdown, ra, rb = st[2], st[3], st[6], st[7], st[8], st[9]
    reward, terminated, truncated = out[1], out[2], out[3]
    code, param, ruin, max_dd = int(cfg[2]), cfg[3], cfg[5], cfg[6]
    for b in range(len(t)):
        if skip[b]:
            continue
        growth, eq = reward[b], equity[b]
        log_ret = math.log(growth) if growth > 0 else LOG_RETURN_FLOOR
        prev_dd = drawdown[b]
        peak[b] = peak[b] if peak[b] >= eq else eq
        dd = drawdown[b] = 1.0 - eq / peak[b]
        if code == 0:
            reward[b] = log_ret
        elif code == 1:
            x = dd - prev_dd
            reward[b] = log_ret - param * ((x + abs(x)) * 0.5)
        else:  # differential Sharpe, DifferentialSharpe's expressions
            a, m = ra[b], rb[b]
            d_a, d_b, var = log_ret - a, log_ret * log_ret - m, m - a * a
            y = var - DSR_VAR_FLOOR
            safe = DSR_VAR_FLOOR + (y + abs(y)) * 0.5
            mask = 1.0 if var > DSR_VAR_FLOOR else 0.0
            reward[b] = (m * d_a - 0.5 * a * d_b) / safe**1.5 * mask
            ra[b], rb[b] = a + param * d_a, m + param * d_b
        terminated[b] = (eq < ruin) | (dd > max_dd)
        truncated[b] = nt_done = t[b] >= last[b]
        st[10][b] = terminated[b] | nt_done


@register_jitable
def _restart(st: Any, init: float, starts: Any, skip: Any, out: Any) -> None:
    """NEXT_STEP autoreset of the books in ``skip``: fresh all-cash books at ``starts``."""
    cash, shares, t, equity, costs_paid, turnover_paid = st[0], st[1], st[2], st[3], st[4], st[5]
    reward, terminated, truncated, position, cost, turn = out[1], out[2], out[3], out[5], out[6], out[7]  # fmt: skip
    for b in range(len(t)):
        if not skip[b]:
            continue
        t[b], cash[b, 0], equity[b], st[6][b], st[7][b] = starts[b], init, init, init, 0.0
        costs_paid[b] = turnover_paid[b] = st[8][b] = st[9][b] = 0.0
        shares[b, :] = 0.0
        position[b, :] = 0.0
        reward[b] = cost[b] = turn[b] = 0.0
        terminated[b] = truncated[b] = st[10][b] = False


@register_jitable
def _observe(p: Any, st: Any, with_time: bool, out: Any) -> None:
    """Observations (window gather, weights, elapsed fraction), equity and dates of every book."""
    windows, first, span, dates, block, width = p[5], p[6], p[7], p[9], p[10], p[11]
    t, equity = st[2], st[3]
    obs, equity_out, position, date_out = out[0], out[4], out[5], out[8]
    n, length, dim = position.shape[1], p[0].shape[1], obs.shape[1]
    for b in range(len(t)):  # one contiguous run per book, state slots overwritten below
        row, start = obs[b], b * block + t[b] * width
        src = windows[start : start + dim]
        for k in range(dim):  # a constant start: LLVM vectorises this, not range(slots, dim)
            row[k] = src[k]
    for b in range(len(t)):
        for i in range(n):
            obs[b, i] = position[b, i]
        if with_time:
            obs[b, n] = (t[b] - first[b]) / span[b]
        equity_out[b] = equity[b]
        date_out[b] = dates[b * length + t[b]]


def fused_step(actions: Any, p: Any, st: Any, cfg: Any, starts: Any, out: Any) -> int:
    """Step every book once; returns -1, or the first book whose discrete action is out of range.

    Each pass runs over all books, so no call is made per book.

    Args:
        actions: ``(B,)`` int64 discrete actions or ``(B, N)`` float64 target weights.
        p: ``(opens, closes, inv_adv, costs, levels, windows, first, span, last, dates, block,
            width)``: prices ``(B, T, N)``, ``1/adv`` ``(B, T, N)`` (``(B, T, N)`` zeros-shaped
            dummy when there is no impact), the cost model's five rates, the discrete levels, the
            flat float32 buffer under the observation windows (the window of book ``b`` at day
            ``t`` starts at ``b * block + t * width``), the rows ``first`` ``(B,)``, span (float
            ``(B,)``), ``last`` ``(B,)``, the dates as int64 days ``(B*T,)`` (row ``b*T + t``).
        st: ``(cash, shares, t, equity, costs_paid, turnover_paid, peak, drawdown, reward_a,
            reward_b, needs_reset)``, updated in place.
        cfg: ``(low, high, reward_code, reward_param, initial_cash, ruin_level, max_dd,
            include_time)`` as floats.
        starts: Day index of each book's next episode (read for books being reset).
        out: ``(obs, reward, terminated, truncated, equity, position, cost, turnover, date,
            targets, scratch)``: the outputs, then ``(B, N)`` and ``(N,)`` float64 buffers.
    """
    skip = st[10].copy()  # the books reset this step (their action is ignored)
    bad = _targets(actions, p[4], cfg[0], cfg[1], skip, out[9])
    if bad >= 0:
        return bad
    _trade(p, st, out[9], out[10], skip, out)
    _score(st, cfg, p[8], skip, out)
    _restart(st, cfg[4], starts, skip, out)
    _observe(p, st, cfg[7] != 0.0, out)
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
