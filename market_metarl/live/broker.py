"""The broker interface, and the paper broker that fills orders over the ledger.

A :class:`Broker` takes target-weight orders with client ids and reports positions, cash, equity
and fills. :class:`PaperBroker` implements it over the :class:`~market_metarl.live.ledger.Ledger`
with the env's timing and the one cost model: the order decided after the close of day ``t`` is
filled at the open of ``t+1`` (when that bar becomes known, in a later step); the traded notional is
``|w - u| * E_open`` (``u``: the weight held just before the trade), its cost comes out of equity
and the target weight applies to the equity after costs; shorts pay the day's borrow. These are
the conventions of :mod:`market_metarl.envs.accounting`, and the trade itself is the simulator's
(:func:`rebalance` calls :func:`~market_metarl.envs.simulator.rebalance_and_mark`), so the paper
account's equity equals the env's and the backtest's to float precision.

:class:`~market_metarl.live.alpaca.AlpacaBroker` (``paper init --broker alpaca``) implements it
over Alpaca's API through alpaca-py: OPG market orders (filled at the next open, the same timing),
written ahead to the ledger before they are sent, and reconciled at every step.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from market_metarl.envs.costs import CostModel, inverse_adv, trailing_adv
from market_metarl.envs.simulator import rebalance_and_mark
from market_metarl.live.ledger import Book, Ledger
from market_metarl.types import DataError


@dataclass(frozen=True)
class OrderRequest:
    """A target-weight order decided after the close of ``decided``.

    Attributes:
        client_id: Deterministic id (one per account, date and symbol): submitting it twice
            trades once.
        symbol: The symbol.
        target_weight: Weight of equity to hold after the next open.
        decided: The decision day.
        ref_price: The decision day's close, where a broker that trades share quantities (Alpaca)
            turns the weight into shares; None where the broker needs none (the paper broker).
        equity: The account's equity at that close, all symbols marked (a multi-asset account);
            None: cash plus this symbol's position (all there is in a one-symbol account).
    """

    client_id: str
    symbol: str
    target_weight: float
    decided: dt.date
    ref_price: float | None = None
    equity: float | None = None


@dataclass(frozen=True)
class Order:
    """An order as the broker knows it: ``status`` is submitted, filled or cancelled."""

    client_id: str
    symbol: str
    target_weight: float
    decided: dt.date
    status: str


@dataclass(frozen=True)
class Fill:
    """A fill: signed shares traded at ``price`` on ``date``, and what it cost."""

    client_id: str
    date: dt.date
    symbol: str
    shares: float
    price: float
    cost: float


class Broker(ABC):
    """Where target-weight orders go (the paper ledger, or Alpaca's API).

    The daily step calls, in order: :meth:`prepare` (before its transaction: talk to the broker;
    a message means "not now"), then inside its one ledger transaction :meth:`settle` (fills),
    :meth:`reconcile` and :meth:`stage` (the day's order), then :meth:`flush` after the commit (a
    broker behind a network sends there what :meth:`stage` wrote ahead).
    """

    def prepare(self) -> str | None:
        """Get ready for a step; a message (when to run instead) means: step nothing now."""
        return None

    def stage(self, request: OrderRequest) -> None:
        """Record the day's order inside the step's transaction (here: :meth:`submit` it)."""
        self.submit(request)

    def flush(self) -> None:  # noqa: B027 (a hook: most brokers have nothing to send)
        """After the step's transaction committed: send what :meth:`stage` recorded (nothing)."""

    def reconcile(self, day: str, prices: Mapping[str, float]) -> float:
        """Compare the ledger's book with the broker's; the difference as a fraction of equity."""
        return 0.0

    @abstractmethod
    def settle(self, bars: pd.DataFrame) -> list[Fill]:
        """Record the fills of pending orders up to the last bar of ``bars`` (one symbol's)."""

    def settle_all(self, bars: Mapping[str, pd.DataFrame]) -> list[Fill]:
        """Record the fills of a multi-asset account's pending orders (``bars``: by symbol).

        By default :meth:`settle` with one symbol's bars: a broker whose fills come from its own
        records (Alpaca) only reads the last date from them.
        """
        return self.settle(next(iter(bars.values())))

    @abstractmethod
    def submit(self, request: OrderRequest) -> Order:
        """Send an order; submitting a known client id again returns the existing order."""

    @abstractmethod
    def order(self, client_id: str) -> Order | None:
        """The order with this client id, or None."""

    @abstractmethod
    def positions(self) -> dict[str, float]:
        """Shares held, by symbol."""

    @abstractmethod
    def cash(self) -> float:
        """Cash held (negative when borrowing to be leveraged long)."""

    @abstractmethod
    def fills(self, since: dt.date | None = None) -> list[Fill]:
        """Fills dated ``since`` or later, oldest first."""

    def equity(self, prices: Mapping[str, float]) -> float:
        """Cash plus the positions at ``prices``."""
        return self.cash() + sum(q * prices[s] for s, q in self.positions().items() if q)


def ledger_order(ledger: Ledger, client_id: str) -> Order | None:
    """The order with this client id as the ledger records it, or None."""
    row = ledger.order(client_id)
    if row is None:
        return None
    day, symbol, weight, status = row
    return Order(client_id, symbol, weight, dt.date.fromisoformat(day), status)


def ledger_fills(ledger: Ledger, since: dt.date | None = None) -> list[Fill]:
    """The fills the ledger records dated ``since`` or later, oldest first."""
    rows = ledger.fills(since.isoformat() if since else None)
    return [
        Fill(
            r["client_id"],
            dt.date.fromisoformat(r["date"]),
            r["symbol"],
            r["shares"],
            r["price"],
            r["cost"],
        )
        for r in rows
    ]


def rebalance(
    cash: float,
    shares: Mapping[str, float],
    prices: Mapping[str, float],
    targets: Mapping[str, float],
    costs: CostModel,
    inv_adv: Mapping[str, float] | None = None,
) -> tuple[float, dict[str, float], float]:
    """Trade a book of cash and shares to target weights at ``prices`` (the open).

    The simulator's trade step (:func:`~market_metarl.envs.simulator.rebalance_and_mark`, the one
    rebalance of the env and the backtest) on a one-book batch: traded notional ``|w - u| * E``
    (``E`` the equity at ``prices`` before the trade, ``u`` the weights held), the cost model's
    cost (fees, slippage, minimum fee, impact, the day's borrow) out of ``E``, then the targets
    applied to the equity after costs. A symbol held without a target keeps its weight.

    Returns:
        ``(cash, shares by symbol, cost)`` after the trade.
    """
    symbols = sorted(set(shares) | set(targets))
    p = np.array([[prices[s] for s in symbols]], dtype=np.float64)
    q = np.array([[shares.get(s, 0.0) for s in symbols]], dtype=np.float64)
    held = q * p / (cash + float((q * p).sum()))  # for symbols without a target
    w = np.array([[targets.get(s, held[0, i]) for i, s in enumerate(symbols)]], dtype=np.float64)
    inv = np.array([[(inv_adv or {}).get(s, 0.0) for s in symbols]], dtype=np.float64)
    # Marked at the trade's own prices: the close is not needed (nor returned) here.
    new_cash, new_q, _, cost, _ = rebalance_and_mark(np.array([[cash]]), q, p, p, w, costs, inv)
    return (
        float(new_cash[0, 0]),
        dict(zip(symbols, new_q[0].tolist(), strict=True)),
        float(cost[0, 0]),
    )


def next_bar(bars: pd.DataFrame, decided: str | dt.date) -> int | None:
    """Row of the first bar after the decision day (where its order fills), if known yet."""
    i = int(bars.index.searchsorted(pd.Timestamp(decided), side="right"))
    return i if i < len(bars) else None


def inverse_adv_at(bars: pd.DataFrame, decided: str | dt.date, costs: CostModel) -> float:
    """``1 / ADV`` on the decision day (causal), or 0 when the cost model has no impact term."""
    if not costs.impact_coef:
        return 0.0
    upto = bars.loc[bars.index <= pd.Timestamp(decided)]
    adv = trailing_adv(upto["close"].to_numpy(), upto["volume"].to_numpy())
    return float(inverse_adv(adv[-1:])[0])


def fill_book(book: Book, symbol: str, bars: pd.DataFrame, costs: CostModel) -> Book:
    """A shadow book after its pending target fills at the next open (if that bar is known)."""
    if book.pending is None or book.pending_date is None:
        return book
    i = next_bar(bars, book.pending_date)
    if i is None:
        return book
    price = float(bars["open"].to_numpy()[i])
    cash, shares, _ = rebalance(
        book.cash,
        {symbol: book.shares},
        {symbol: price},
        {symbol: book.pending},
        costs,
        {symbol: inverse_adv_at(bars, book.pending_date, costs)},
    )
    return replace(book, cash=cash, shares=shares[symbol], pending=None, pending_date=None)


class PaperBroker(Broker):
    """A simulated broker over the ledger: next-open fills, the env's cost model and accounting.

    Writes go through the ledger's connection; call them inside ``ledger.transaction()``.
    """

    def __init__(self, ledger: Ledger, costs: CostModel) -> None:
        """Trade over ``ledger`` with the cost model ``costs``."""
        self.ledger, self.costs = ledger, costs

    def submit(self, request: OrderRequest) -> Order:
        """Record the order (once per client id) and return it."""
        self.ledger.insert_order(
            request.client_id,
            request.decided.isoformat(),
            request.symbol,
            float(request.target_weight),
        )
        order = self.order(request.client_id)
        assert order is not None
        return order

    def order(self, client_id: str) -> Order | None:
        """The order with this client id, or None."""
        return ledger_order(self.ledger, client_id)

    def positions(self) -> dict[str, float]:
        """Shares held, by symbol."""
        return self.ledger.positions()

    def cash(self) -> float:
        """Cash held."""
        return self.ledger.cash()

    def fills(self, since: dt.date | None = None) -> list[Fill]:
        """Fills dated ``since`` or later, oldest first."""
        return ledger_fills(self.ledger, since)

    def settle(self, bars: pd.DataFrame) -> list[Fill]:
        """Fill every pending order whose next open is in ``bars`` (one symbol's bars)."""
        done = []
        for client_id, decided, symbol, weight in self.ledger.pending_orders():
            i = next_bar(bars, decided)
            if i is None:
                continue
            when = pd.Timestamp(bars.index[i])
            price = float(bars["open"].to_numpy()[i])
            held = self.positions()
            cash, shares, cost = rebalance(
                self.cash(),
                held,
                {symbol: price},
                {symbol: weight},
                self.costs,
                {symbol: inverse_adv_at(bars, decided, self.costs)},
            )
            traded = shares[symbol] - held.get(symbol, 0.0)
            day = when.date().isoformat()
            self.ledger.record_fill(client_id, day, symbol, traded, price, cost)
            self.ledger.set_book(cash, shares, day)
            done.append(Fill(client_id, when.date(), symbol, traded, price, cost))
        return done

    def settle_all(self, bars: Mapping[str, pd.DataFrame]) -> list[Fill]:
        """Fill a multi-asset account's pending orders: each decision day's orders together.

        The orders decided on one day fill at the next open as ONE rebalance of the whole book
        (:func:`rebalance` over every symbol of ``bars``: the account's equity at the open, one
        cost, the targets applied to the equity after it), as the env simulator trades a
        multi-asset book. The day's cost is split over its fills in proportion to their traded
        notional. A day whose next open is not known for every symbol waits.
        """
        days: dict[str, list[tuple[str, str, float]]] = {}
        for client_id, decided, symbol, weight in self.ledger.pending_orders():
            days.setdefault(decided, []).append((client_id, symbol, weight))
        done: list[Fill] = []
        for decided, orders in sorted(days.items()):
            rows = {s: next_bar(b, decided) for s, b in bars.items()}
            if any(i is None for i in rows.values()):
                continue
            when = {pd.Timestamp(bars[s].index[i]) for s, i in rows.items() if i is not None}
            if len(when) != 1:
                raise DataError(
                    f"the symbols' next sessions after {decided} differ: {sorted(when)}"
                )
            day = when.pop().date()
            prices = {s: float(b["open"].to_numpy()[rows[s]]) for s, b in bars.items()}
            held = self.positions()
            cash, shares, cost = rebalance(
                self.cash(),
                held,
                prices,
                {s: w for _, s, w in orders},
                self.costs,
                {s: inverse_adv_at(b, decided, self.costs) for s, b in bars.items()},
            )
            traded = {s: shares[s] - held.get(s, 0.0) for _, s, _ in orders}
            notional = {s: abs(q) * prices[s] for s, q in traded.items()}
            total = sum(notional.values())
            for client_id, symbol, _ in orders:
                part = cost * notional[symbol] / total if total > 0 else 0.0
                self.ledger.record_fill(
                    client_id, day.isoformat(), symbol, traded[symbol], prices[symbol], part
                )
                done.append(Fill(client_id, day, symbol, traded[symbol], prices[symbol], part))
            self.ledger.set_book(cash, shares, day.isoformat())
        return done
