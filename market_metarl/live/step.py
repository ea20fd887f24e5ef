"""The daily step: after the close of the as-of day, adapt, decide, guard, submit and record.

One step for as-of day ``D`` (all of its writes in ONE ledger transaction):

0. *broker*: :meth:`~market_metarl.live.broker.Broker.prepare` (a broker behind a network reads its
   book and sends orders an earlier run left written ahead; Alpaca's OPG window returns a
   ``waiting`` result that says when to run instead, and nothing is written);
1. *validate* (before any write): bars up to ``D`` from the feed (no closed day, no future, no
   stale data), the live market view (``D`` is its last decision day), no gap in the span the step
   reads (K support days before the origin and the features' warm-up included);
2. *settle*: orders of earlier days fill at their next open; every session since the last mark is
   marked at its close (the account and its shadow books: pooled policy, buy-and-hold); the
   broker's book is reconciled with the ledger's (its difference goes to the guardrails);
3. *decide*: :func:`~market_metarl.meta.protocol.rolling_target_at` (the same adapt as training and
   the rolling backtest) recomputes the current block from its adaptation day, starting from the
   weight the account actually held at that day's close; the pooled policy's target for the
   account's book and for its shadow book;
4. *guard*: :func:`~market_metarl.live.guardrails.decide`;
5. *submit and record*: the order (deterministic client id), the adaptation (support dates, hash
   of the adapted state), the step, the guardrail events and state; after the commit the broker
   sends the order (:meth:`~market_metarl.live.broker.Broker.flush`).

A step for a date already done (or earlier) is a no-op. An account over several symbols steps
through :func:`~market_metarl.live.multistep.step_portfolio` after the same checks of its date.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import numpy as np
import pandas as pd

from market_metarl.live.account import PaperSession
from market_metarl.live.broker import OrderRequest, fill_book
from market_metarl.live.feeds import require_sessions, utc_now
from market_metarl.live.guardrails import GuardDecision, decide
from market_metarl.live.ledger import SHADOW_BOOKS, EquityRow, Ledger
from market_metarl.live.multistep import step_portfolio
from market_metarl.live.step_common import (
    StepResult,
    bars_close,
    client_id,
    guard_recorded,
    state_hash,
)
from market_metarl.meta.protocol import (
    MarketView,
    act_days,
    adapt_at,
    rolling_blocks,
    rolling_target_at,
)
from market_metarl.types import DataError


def step(
    session: PaperSession, asof: dt.date | None = None, now: pd.Timestamp | None = None
) -> StepResult:
    """Run the daily step for ``asof`` (default: the feed's next day); see the module docstring.

    Raises:
        DataError: Bad as-of date or data (nothing is written).
    """
    now = utc_now() if now is None else now
    ledger, account = session.ledger, session.account
    wait = session.broker.prepare()  # a broker behind a network: its book, orders left unsent
    if wait is not None:
        return StepResult(None, "waiting", wait)
    last = ledger.last_step()
    if asof is None:
        asof = session.feed.default_asof(last, now)
        if asof is None:
            if last is None:
                raise DataError("the account has not stepped yet: give --asof for its first day")
            return StepResult(str(last), "noop", f"nothing new after {last}")
    if account.origin is not None and asof < dt.date.fromisoformat(account.origin):
        session.feed.bars(asof, now)  # says so when the date itself is bad (closed, no data)
        raise DataError(
            f"--asof {asof} is before the account's first step ({account.origin}); "
            "a paper account only moves forward"
        )
    if last is not None and asof <= last:
        return StepResult(str(asof), "noop", f"already stepped through {last}; nothing to do")
    if len(session.symbols) > 1:  # a multi-asset account
        return step_portfolio(session, asof, now, last)
    # validate
    bars = session.feed.bars(asof, now)
    view = session.run.market_view(bars, account.symbol, live=True)
    day = view.days - 1
    if view.days == 0 or view.dates[-1] != pd.Timestamp(asof):
        raise DataError(f"{asof} is not a decision day of {session.feed.spec} (too little history)")
    origin = dt.date.fromisoformat(account.origin) if account.origin else asof
    origin_row = view.row(origin)
    k = account.adapt_days
    if origin_row - k + 1 < 0:
        raise DataError(
            f"the first step on {origin} adapts on the {k} days before it, but {session.feed.spec} "
            f"has only {origin_row + 1} decision days up to then; start later"
        )
    warmup = int(bars.index.searchsorted(view.dates[0]))
    first = int(bars.index.searchsorted(view.dates[origin_row - k + 1])) - warmup
    require_sessions(bars, bars.index[max(first, 0)], session.feed.calendar, session.feed.spec)
    with ledger.transaction():
        if ledger.last_step() != last:
            return StepResult(str(asof), "noop", "another process stepped this ledger meanwhile")
        if account.origin is None:
            ledger.set_origin(asof.isoformat())
        fills = _settle(session, bars, origin)
        mismatch = session.broker.reconcile(asof.isoformat(), {account.symbol: bars_close(bars)})
        result = _decide_and_submit(session, view, bars, origin_row, day, fills, mismatch)
    session.refresh()
    session.broker.flush()  # after the commit: the order is written ahead before it is sent
    return result


def _settle(session: PaperSession, bars: pd.DataFrame, origin: dt.date) -> int:
    """Fill pending orders and shadow targets, and mark every session since the last mark."""
    ledger, symbol, broker = session.ledger, session.account.symbol, session.broker
    marked = ledger.equity_rows(limit=1)
    after = pd.Timestamp(marked[-1].date) if marked else pd.Timestamp(origin) - pd.Timedelta(days=1)
    fills = 0
    closes = bars["close"].to_numpy()
    for i in range(int(bars.index.searchsorted(after, side="right")), len(bars)):
        when, upto = pd.Timestamp(bars.index[i]), bars.iloc[: i + 1]
        fills += len(broker.settle(upto))
        books = {}
        for name in SHADOW_BOOKS:
            books[name] = fill_book(ledger.book(name), symbol, upto, session.costs)
            ledger.set_shadow(books[name], when.date().isoformat())
        price = float(closes[i])
        cash, shares = ledger.cash(), ledger.positions().get(symbol, 0.0)
        equity = cash + shares * price
        ledger.insert_mark(
            EquityRow(
                when.date().isoformat(),
                cash,
                shares * price,
                equity,
                books["pooled"].cash + books["pooled"].shares * price,
                books["buy_and_hold"].cash + books["buy_and_hold"].shares * price,
                0,
            ),
            [(symbol, shares, price, shares * price / equity)],
        )
    return fills


def _block_start(
    session: PaperSession, view: MarketView, a: int, origin_row: int
) -> tuple[float, float]:
    """Weight held at the close of block day ``a`` and the log return of that day."""
    if a == origin_row:
        return 0.0, 0.0
    ledger, symbol = session.ledger, session.account.symbol
    day, prev = view.dates[a].date().isoformat(), view.dates[a - 1].date().isoformat()
    held = ledger.weight_on(day, symbol)
    now, before = ledger.equity_on(day), ledger.equity_on(prev)
    if held is None or now is None or before is None:
        raise DataError(f"the ledger has no close marks for {prev} and {day}; it is incomplete")
    return held, math.log(now.equity / before.equity)


def _decide_and_submit(
    session: PaperSession,
    view: MarketView,
    bars: pd.DataFrame,
    origin_row: int,
    day: int,
    fills: int,
    mismatch: float,
) -> StepResult:
    """Decide the as-of day's target (adapted, pooled, guarded), submit it and record the step."""
    ledger, account = session.ledger, session.account
    symbol, every = account.symbol, account.every
    day_text = view.dates[day].date().isoformat()
    a, _ = rolling_blocks(origin_row, day + 1, every)[-1]  # the adaptation day of this block
    # decide
    adapted = _adapted_target(session, view, origin_row, a, day)
    mark = ledger.equity_on(day_text)
    held = ledger.weight_on(day_text, symbol)
    assert mark is not None and held is not None
    pooled = float(act_days(session.pooled, view.episode, day, day + 1, np.array([held]))[0][0, 0])
    shadow_target = _pooled_shadow_target(session, view, bars, day)
    # guard
    decision = guard_recorded(session, day_text, decide, (adapted, pooled, held), mismatch)
    # submit and record
    cid = None
    if decision.target is not None:
        cid = client_id(account.account_id, view.dates[day].date(), symbol)
        order = OrderRequest(cid, symbol, decision.target, view.dates[day].date(), bars_close(bars))
        session.broker.stage(order)
    ledger.set_shadow(
        replace(ledger.book("pooled"), pending=shadow_target, pending_date=day_text), day_text
    )
    bh = ledger.book("buy_and_hold")
    ledger.set_shadow(replace(bh, pending=1.0, pending_date=day_text), day_text)
    block = view.dates[a].date().isoformat()
    _record_step(ledger, day_text, block, decision, adapted, pooled, cid)
    return StepResult(
        day_text,
        "stepped",
        f"{symbol} target {decision.target if decision.target is not None else 'none'} "
        f"({decision.policy})",
        target=decision.target,
        policy=decision.policy,
        adapted_target=adapted,
        pooled_target=pooled,
        adaptation_date=block,
        equity=mark.equity,
        cash=mark.cash,
        fills=fills,
        events=tuple(e.kind for e in decision.events),
    )


def _adapted_target(
    session: PaperSession, view: MarketView, origin_row: int, a: int, day: int
) -> float:
    """The adapted agent's target on ``day`` of the block starting at ``a``.

    On the block's first day the agent adapts (on the K days up to it) and the adaptation is
    recorded; otherwise the block is replayed from its adaptation day.
    """
    ledger, k, every = session.ledger, session.account.adapt_days, session.account.every
    if a == day:
        adapt_at(session.adapted, view.episode, a, k)
        asof = view.dates[day].date().isoformat()
        support = (view.dates[a - k + 1].date().isoformat(), asof)
        ledger.insert_adaptation(asof, support, k, state_hash(session.adapted))
    held_a, reward_a = _block_start(session, view, a, origin_row)
    target, _ = rolling_target_at(
        session.adapted, view, origin_row, day, k, every, np.array([held_a]), reward_a
    )
    return float(target[0])


def _pooled_shadow_target(
    session: PaperSession, view: MarketView, bars: pd.DataFrame, day: int
) -> float:
    """The pooled policy's target for its shadow book (from the weight that book holds)."""
    shadow = session.ledger.book("pooled")
    price = bars_close(bars)
    held = shadow.shares * price / (shadow.cash + shadow.shares * price)
    return float(act_days(session.pooled, view.episode, day, day + 1, np.array([held]))[0][0, 0])


def _record_step(
    ledger: Ledger,
    day: str,
    block: str,
    decision: GuardDecision,
    adapted: float,
    pooled: float,
    cid: str | None,
) -> None:
    """The step's row, and its close marked as stepped."""
    ledger.insert_step(
        {
            "date": day,
            "adaptation_date": block,
            "policy": decision.policy,
            "adapted_target": adapted,
            "pooled_target": pooled,
            "target": decision.target,
            "client_id": cid,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    ledger.set_stepped(day)
