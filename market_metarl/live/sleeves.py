"""A multi-asset account's books beside its own: each symbol's sleeve, and the shadow books.

- *Sleeves*: symbol ``i``'s policy decides its sleeve weight ``s_i`` from the sleeve's own state,
  the weight its sleeve weights of the days before give at this close and the sleeve's log return
  of the day, with the arithmetic of :func:`~market_metarl.meta.protocol.act_days` (flat at the
  origin), so the rolling protocol per asset
  (:func:`~market_metarl.meta.protocol.rolling_targets`) is reproduced day by day. The sleeve
  weights come from the ledger's ``step_symbols`` (``sleeve_target`` for the account's sleeves,
  ``shadow_target`` for the pooled shadow book's).
- *Shadow books*: the pooled policy's (``a_i * s_i`` of its own sleeves) and buy-and-hold (the
  capital split ``a`` itself, rebalanced daily), filled like the account at the next open with
  the same cost model; their cash in ``shadow_books``, their shares in ``shadow_positions``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from market_metarl.envs.accounting import drift
from market_metarl.live.account import PaperSession
from market_metarl.live.broker import inverse_adv_at, next_bar, rebalance
from market_metarl.live.ledger import Ledger
from market_metarl.live.portfolio_schema import (
    set_shadow_positions,
    shadow_positions,
    sleeve_targets,
)
from market_metarl.meta.contracts import Agent
from market_metarl.meta.protocol import MarketView, next_day_log_return
from market_metarl.types import DataError


@dataclass(frozen=True)
class SymbolView:
    """One symbol's bars up to the as-of day, its live view, its origin row and as-of row."""

    symbol: str
    bars: pd.DataFrame
    view: MarketView
    origin_row: int
    day: int

    def date(self, row: int) -> str:
        """The ISO date of decision row ``row``."""
        return self.view.dates[row].date().isoformat()


@dataclass
class BlockState:
    """A symbol's adapted agent inside its block, as a step of this session left it.

    The next day's step of the same session acts on with it instead of adapting again and
    replaying the block: the target and the weight the agent saw that day give the next day's
    weight and reward with :func:`~market_metarl.meta.protocol.act_days`' arithmetic.

    Attributes:
        block: The block's adaptation day (ISO).
        day: The day the agent last acted (ISO).
        agent: The agent, adapted at ``block`` and stepped through ``day``.
        target: Its target on ``day`` ``(1,)``.
        held: The sleeve weight it saw on ``day`` ``(1,)``.
    """

    block: str
    day: str
    agent: Agent
    target: np.ndarray
    held: np.ndarray

    def next_day(self, m: SymbolView) -> tuple[np.ndarray, float]:
        """The sleeve weight at the close of ``m``'s as-of day and the log return of that day."""
        t, ep = m.day - 1, m.view.episode
        opens, closes = ep.opens[0].numpy(), ep.closes[0].numpy()
        reward = next_day_log_return(ep, self.target, self.held, t)
        return drift(self.target[None], (closes[t + 1] / opens[t + 1])[None])[0], reward


def fill_shadow(session: PaperSession, name: str, upto: dict[str, pd.DataFrame], day: str) -> float:
    """Fill a shadow book's pending targets at their next open (once known).

    Returns:
        The book's equity at the close of ``upto``'s last bar.
    """
    ledger, conn = session.ledger, session.ledger.conn
    book, held = ledger.book(name), shadow_positions(conn, name)
    if book.pending_date is not None:
        rows = {s: next_bar(b, book.pending_date) for s, b in upto.items()}
        if all(i is not None for i in rows.values()):
            opens = {s: float(b["open"].to_numpy()[rows[s]]) for s, b in upto.items()}
            cash, shares, _ = rebalance(
                book.cash,
                {s: q for s, (q, _) in held.items()},
                opens,
                {s: p for s, (_, p) in held.items() if p is not None},
                session.costs,
                {s: inverse_adv_at(b, book.pending_date, session.costs) for s, b in upto.items()},
            )
            book = replace(book, cash=cash, pending=None, pending_date=None)
            held = {s: (shares[s], None) for s in held}
            ledger.set_shadow(book, day)
            set_shadow_positions(conn, name, held)
    closes = {s: float(b["close"].iloc[-1]) for s, b in upto.items()}
    return book.cash + sum(q * closes[s] for s, (q, _) in held.items())


def sleeve_held(ledger: Ledger, m: SymbolView, t: int, column: str) -> float:
    """The sleeve's weight at the close of row ``t``: its target of ``t - 1``, drifted."""
    if t <= m.origin_row:
        return 0.0
    prev = np.array([_sleeve_target(ledger, m, t - 1, column)])
    ep = m.view.episode
    closes, opens = ep.closes[0].numpy(), ep.opens[0].numpy()
    return float(drift(prev[None], (closes[t] / opens[t])[None])[0][0])


def sleeve_start(ledger: Ledger, m: SymbolView, a: int, column: str) -> tuple[np.ndarray, float]:
    """The sleeve's weight at the close of block day ``a`` and its log return of that day.

    The same arithmetic as :func:`~market_metarl.meta.protocol.act_days` (flat at the origin).
    """
    if a <= m.origin_row:
        return np.zeros(1), 0.0
    t, ep = a - 1, m.view.episode
    target = np.array([_sleeve_target(ledger, m, t, column)])
    held = np.array([sleeve_held(ledger, m, t, column)])
    opens, closes = ep.opens[0].numpy(), ep.closes[0].numpy()
    reward = next_day_log_return(ep, target, held, t)
    return drift(target[None], (closes[a] / opens[a])[None])[0], reward


def set_shadow_targets(
    session: PaperSession, symbols: list[str], split: np.ndarray, shadow: list[float], day: str
) -> None:
    """The shadow books' targets for the next open: pooled ``a_i * s_i``, buy-and-hold ``a``."""
    conn, ledger = session.ledger.conn, session.ledger
    targets = {
        "pooled": {s: float(a * x) for s, a, x in zip(symbols, split, shadow, strict=True)},
        "buy_and_hold": {s: float(a) for s, a in zip(symbols, split, strict=True)},
    }
    for name, want in targets.items():
        held = shadow_positions(conn, name)
        set_shadow_positions(conn, name, {s: (held[s][0], w) for s, w in want.items()})
        ledger.set_shadow(replace(ledger.book(name), pending_date=day), day)


def _sleeve_target(ledger: Ledger, m: SymbolView, t: int, column: str) -> float:
    """The sleeve weight recorded for row ``t`` (a multi-asset account decides every session)."""
    value = sleeve_targets(ledger.conn, m.date(t), column).get(m.symbol)
    if value is None:
        raise DataError(f"the ledger has no {m.symbol} decision for {m.date(t)}; it is incomplete")
    return value
