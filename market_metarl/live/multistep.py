"""The daily step of a multi-asset account: every symbol adapted on its own, one book.

A multi-asset account (``paper init --feed bundled:SPY,bundled:QQQ,...``) runs the rolling protocol
on each symbol on its own, as the rolling backtest does per asset: symbol ``i`` has its own market
view, adapts on its own K days every R days, and its policy decides a *sleeve* weight ``s_i`` from
the state of its sleeve (the weight and the log return the sleeve's own targets give; the sleeve
starts flat at the origin). The account holds ``w_i = a_i * s_i`` of its equity in symbol ``i``,
``a`` the capital split of the decision day (:func:`~market_metarl.meta.allocation.capital_split`,
``[paper] allocation``). The sleeve's state is the one the rolling protocol computes
(:func:`~market_metarl.meta.protocol.rolling_targets`), recomputed each day from the sleeve weights
the ledger records (``step_symbols``); when a guardrail changed a symbol's weight, the sleeve
weight recorded is what was traded (``w_i / a_i``).

One step for as-of day ``D`` writes, in ONE ledger transaction, what a one-symbol step does
(:mod:`market_metarl.live.step`): the fills of the orders of earlier days (each day's orders as
one rebalance of the whole book, :meth:`~market_metarl.live.broker.Broker.settle_all`), a close
mark per session with one ``marks`` row per symbol, the shadow books (the pooled policy's sleeves
with the same split; buy-and-hold: the split itself, rebalanced daily), the reconciliation, the
guardrails over the account (:func:`~market_metarl.live.guardrails.decide_account`), one order per
symbol (client id per account, day and symbol), one ``steps`` row (the account's net totals), one
``step_symbols`` row per symbol and one ``adaptations`` row per adaptation day (its hash covers
every symbol's adapted state).
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd

from market_metarl.envs.accounting import drift
from market_metarl.live.account import PaperSession
from market_metarl.live.broker import OrderRequest
from market_metarl.live.feeds import ReplayFeed, YFinanceFeed, require_sessions
from market_metarl.live.guardrails import AccountDecision, decide_account
from market_metarl.live.ledger import SHADOW_BOOKS, EquityRow, Ledger
from market_metarl.live.portfolio_schema import (
    SymbolDecision,
    insert_decisions,
)
from market_metarl.live.sleeves import (
    BlockState,
    SymbolView,
    fill_shadow,
    set_shadow_targets,
    sleeve_held,
    sleeve_start,
)
from market_metarl.live.step_common import (
    StepResult,
    bars_close,
    client_id,
    guard_recorded,
    state_hash,
)
from market_metarl.meta.allocation import capital_split, closes_needed
from market_metarl.meta.protocol import (
    act_days,
    adapt_at,
    rolling_blocks,
)
from market_metarl.types import DataError


def step_portfolio(
    session: PaperSession, asof: dt.date, now: pd.Timestamp, last: dt.date | None
) -> StepResult:
    """The step of a multi-asset account for ``asof`` (after the checks every step makes).

    Raises:
        DataError: Bad as-of date or data of any symbol (nothing is written).
    """
    ledger, account = session.ledger, session.account
    origin = dt.date.fromisoformat(account.origin) if account.origin else asof
    markets = [_market(session, i, asof, now, origin) for i in range(len(session.feeds))]
    need = closes_needed(session.config.allocation, session.config.vol_window)
    short = [m.symbol for m in markets if len(m.bars) < need]
    if short:
        raise DataError(
            f"the {session.config.allocation} split needs {need} closes up to {asof}; "
            f"{', '.join(short)} has fewer: start later"
        )
    _refuse_skipped(markets[0], last, asof)
    with ledger.transaction():
        if ledger.last_step() != last:
            return StepResult(str(asof), "noop", "another process stepped this ledger meanwhile")
        if account.origin is None:
            ledger.set_origin(asof.isoformat())
        fills = _settle(session, markets, origin)
        closes = {m.symbol: bars_close(m.bars) for m in markets}
        mismatch = session.broker.reconcile(asof.isoformat(), closes)
        result = _decide_and_submit(session, markets, fills, mismatch)
    session.refresh()
    session.broker.flush()  # after the commit: the orders are written ahead before they are sent
    return result


def _refuse_skipped(m: SymbolView, last: dt.date | None, asof: dt.date) -> None:
    """Refuse an as-of day after a session not stepped.

    Each symbol's sleeve needs every day's decision (``paper run`` steps every session in turn).
    """
    if last is None:
        return
    index = m.bars.index
    missed = index[(index > pd.Timestamp(last)) & (index < pd.Timestamp(asof))]
    if len(missed):
        raise DataError(
            f"a multi-asset account steps every session: {missed[0].date()} was not stepped "
            f"(the last step is {last}); step it first, or `paper run --asof {asof}`"
        )


def _market(
    session: PaperSession, i: int, asof: dt.date, now: pd.Timestamp, origin: dt.date
) -> SymbolView:
    """Symbol ``i``'s bars and view, validated as a one-symbol step validates its feed's."""
    feed, k = session.feeds[i], session.account.adapt_days
    bars = feed.bars(asof, now)
    # the replay and yfinance feeds' bars are slices of load_bars' validated history
    checked = isinstance(feed, ReplayFeed | YFinanceFeed)
    view = session.run.market_view(bars, feed.symbol, live=True, validate=not checked)
    if view.days == 0 or view.dates[-1] != pd.Timestamp(asof):
        raise DataError(f"{asof} is not a decision day of {feed.spec} (too little history)")
    origin_row = view.row(origin)
    if origin_row - k + 1 < 0:
        raise DataError(
            f"the first step on {origin} adapts on the {k} days before it, but {feed.spec} "
            f"has only {origin_row + 1} decision days up to then; start later"
        )
    warmup = int(bars.index.searchsorted(view.dates[0]))
    first = int(bars.index.searchsorted(view.dates[origin_row - k + 1])) - warmup
    require_sessions(bars, bars.index[max(first, 0)], feed.calendar, feed.spec)
    return SymbolView(feed.symbol, bars, view, origin_row, view.days - 1)


def _settle(session: PaperSession, markets: list[SymbolView], origin: dt.date) -> int:
    """Fill pending orders and shadow targets, and mark every session since the last mark."""
    ledger, broker = session.ledger, session.broker
    marked = ledger.equity_rows(limit=1)
    after = pd.Timestamp(marked[-1].date) if marked else pd.Timestamp(origin) - pd.Timedelta(days=1)
    index = markets[0].bars.index
    fills = 0
    for i in range(int(index.searchsorted(after, side="right")), len(index)):
        when = pd.Timestamp(index[i])
        day = when.date().isoformat()
        upto = {m.symbol: m.bars.loc[m.bars.index <= when] for m in markets}
        if any(u.index[-1] != when for u in upto.values()):
            raise DataError(f"not every symbol has a bar on {day}; repair the data first")
        fills += len(broker.settle_all(upto))
        prices = {s: float(u["close"].iloc[-1]) for s, u in upto.items()}
        shadow = {name: fill_shadow(session, name, upto, day) for name in SHADOW_BOOKS}
        cash, shares = ledger.cash(), ledger.positions()
        value = [shares.get(s, 0.0) * p for s, p in prices.items()]
        equity = cash + sum(value)
        ledger.insert_mark(
            EquityRow(day, cash, sum(value), equity, shadow["pooled"], shadow["buy_and_hold"], 0),
            [
                (s, shares.get(s, 0.0), p, v / equity)
                for (s, p), v in zip(prices.items(), value, strict=True)
            ],
        )
    return fills


def _adapted_sleeves(session: PaperSession, markets: list[SymbolView]) -> tuple[list[float], str]:
    """Each symbol's adapted sleeve weight on the as-of day, and the adaptation day of its block.

    On a block's first day each symbol's agent adapts on its K days; the adaptation is recorded
    once for the account (hash over the symbols' adapted states). Later in the block the block is
    replayed from its adaptation day (:func:`~market_metarl.meta.protocol.rolling_target_at`), or,
    when this session stepped the day before, that day's agent acts on (the same arithmetic).
    """
    ledger, k, every = session.ledger, session.account.adapt_days, session.account.every
    out, hashes = [], []
    block = ""
    for m in markets:
        a, _ = rolling_blocks(m.origin_row, m.day + 1, every)[-1]
        block = m.date(a)
        state = session.blocks.get(m.symbol)
        agent = state.agent if state else session.run.agent("adapted")
        ep, d = m.view.episode, m.day
        if state is not None and (state.block, state.day) == (block, m.date(d - 1)):
            held, reward = state.next_day(m)  # this session's agent of the day before acts on
            targets, _ = act_days(agent, ep, d, d + 1, held, reward)
        else:  # adapt at the block's day, act from there (what rolling_target_at does)
            held, reward = sleeve_start(ledger, m, a, "sleeve_target")
            adapt_at(agent, ep, a, k)
            if a == d:
                hashes.append(f"{m.symbol}:{state_hash(agent)}")
            targets, _ = act_days(agent, ep, a, d + 1, held, reward)
            if d > a:  # the weight the agent saw on day d (act_days' own arithmetic)
                closes, opens = ep.closes[0].numpy(), ep.opens[0].numpy()
                held = drift(targets[-2][None], (closes[d] / opens[d])[None])[0]
        target = np.asarray(targets[-1], dtype=np.float64).reshape(1)
        session.blocks[m.symbol] = BlockState(block, m.date(d), agent, target, held)
        out.append(float(target[0]))
    if hashes:
        m = markets[0]
        support = (m.date(m.day - k + 1), m.date(m.day))
        digest = hashlib.sha256("|".join(hashes).encode()).hexdigest()[:16]
        ledger.insert_adaptation(m.date(m.day), support, k, digest)
    return out, block


def _pooled_sleeve(session: PaperSession, m: SymbolView, column: str) -> float:
    """The pooled policy's sleeve weight on the as-of day from the sleeve ``column`` tracks."""
    held = np.array([sleeve_held(session.ledger, m, m.day, column)])
    return float(act_days(session.pooled, m.view.episode, m.day, m.day + 1, held)[0][0, 0])


def _decide_and_submit(
    session: PaperSession, markets: list[SymbolView], fills: int, mismatch: float
) -> StepResult:
    """Decide every symbol's weight (adapted, pooled, split, guarded), submit and record."""
    ledger, cfg = session.ledger, session.config
    symbols = [m.symbol for m in markets]
    asof = markets[0].view.dates[-1].date()
    day = asof.isoformat()
    need = closes_needed(cfg.allocation, cfg.vol_window)
    closes = np.column_stack([m.bars["close"].to_numpy()[-need:] for m in markets])
    split = capital_split(cfg.allocation, closes, cfg.vol_window, tuple(symbols))
    # decide
    adapted, block = _adapted_sleeves(session, markets)
    pooled = [_pooled_sleeve(session, m, "sleeve_target") for m in markets]
    shadow = [_pooled_sleeve(session, m, "shadow_target") for m in markets]
    mark = ledger.equity_on(day)
    assert mark is not None
    held = {s: ledger.weight_on(day, s) or 0.0 for s in symbols}
    # guard
    weights = (
        {s: a * x for s, a, x in zip(symbols, split, adapted, strict=True)},
        {s: a * x for s, a, x in zip(symbols, split, pooled, strict=True)},
        held,
    )
    decision = guard_recorded(session, day, decide_account, weights, mismatch)
    # submit and record
    rows = _submit(session, markets, decision, split, (adapted, pooled, shadow), held, mark.equity)
    set_shadow_targets(session, symbols, split, shadow, day)
    _record_step(ledger, day, block, decision, rows)
    targets = None if decision.targets is None else sum(decision.targets.values())
    text = "none" if decision.targets is None else f"{len(symbols)} symbols, net {targets:+.4f}"
    return StepResult(
        day,
        "stepped",
        f"{','.join(symbols)} target {text} ({decision.policy})",
        target=targets,
        policy=decision.policy,
        adapted_target=sum(r.allocation * r.adapted_target for r in rows),
        pooled_target=sum(r.allocation * r.pooled_target for r in rows),
        adaptation_date=block,
        equity=mark.equity,
        cash=mark.cash,
        fills=fills,
        events=tuple(e.kind for e in decision.events),
        targets={r.symbol: r.target for r in rows},
    )


def _submit(
    session: PaperSession,
    markets: list[SymbolView],
    decision: AccountDecision,
    split: np.ndarray,
    sleeves: tuple[list[float], list[float], list[float]],
    held: dict[str, float],
    equity: float,
) -> list[SymbolDecision]:
    """Stage each symbol's order (sized on the account's ``equity``); the rows to record.

    ``sleeves`` are the adapted, pooled and shadow-pooled sleeve weights. The sleeve weight
    traded is the chosen policy's own when no guardrail changed it, else ``target / split``.
    """
    adapted, pooled, shadow = sleeves
    rows = []
    for i, m in enumerate(markets):
        asof = m.view.dates[-1].date()
        target = None if decision.targets is None else decision.targets[m.symbol]
        cid = None
        if target is not None:
            cid = client_id(session.account.account_id, asof, m.symbol)
            price = bars_close(m.bars)
            session.broker.stage(OrderRequest(cid, m.symbol, target, asof, price, equity=equity))
        chosen = {"adapted": adapted[i], "pooled": pooled[i]}.get(decision.policy, 0.0)
        traded = held[m.symbol] if target is None else target
        sleeve = chosen if traded == split[i] * chosen else traded / split[i]
        rows.append(
            SymbolDecision(
                m.symbol, float(split[i]), adapted[i], pooled[i], shadow[i], sleeve, target, cid
            )
        )
    return rows


def _record_step(
    ledger: Ledger, day: str, block: str, decision: AccountDecision, rows: list[SymbolDecision]
) -> None:
    """The step's row (the account's net totals), its symbols' rows, its close marked stepped."""
    ledger.insert_step(
        {
            "date": day,
            "adaptation_date": block,
            "policy": decision.policy,
            "adapted_target": sum(r.allocation * r.adapted_target for r in rows),
            "pooled_target": sum(r.allocation * r.pooled_target for r in rows),
            "target": None if decision.targets is None else sum(decision.targets.values()),
            "client_id": None,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    insert_decisions(ledger.conn, day, rows)
    ledger.set_stepped(day)
