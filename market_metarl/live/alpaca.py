"""The Alpaca broker: target-weight orders as opening (OPG) market orders, through alpaca-py.

Timing is the env's: the order decided after the close of day ``t`` is an OPG market order, filled
at the open of ``t+1``. OPG orders take whole shares only (fractions are for ``day`` orders), so
the target ``w * E / close`` is truncated toward zero and the unrounded quantity is recorded.

Exactly once, whatever fails:

- *write-ahead*: :meth:`AlpacaBroker.stage` writes the order (its deterministic client id, its
  share quantity) inside the step's transaction; only after that commit does
  :meth:`AlpacaBroker.flush` POST it;
- before any POST the order is looked up by client id (a rerun after a crash finds it sent);
  after a failed POST it is looked up again, and sent again (same client id: Alpaca refuses a
  second order with it) only when Alpaca does not have it; an order not sent before the cutoff of
  the next open expires, so it never fills a day late;
- at the start of every step (:meth:`AlpacaBroker.prepare`, then :meth:`AlpacaBroker.reconcile`)
  the broker's shares and cash are compared with the ledger's; the difference is recorded and the
  kill switch trips above ``[paper] reconcile_tolerance``.

Between 9:28 and 19:00 ET on a trading day Alpaca refuses OPG orders: :meth:`AlpacaBroker.prepare`
then says when to run instead and the step sends and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from market_metarl.live import alpaca_client as api
from market_metarl.live.alpaca_schema import broker_row
from market_metarl.live.broker import (
    Broker,
    Fill,
    Order,
    OrderRequest,
    ledger_fills,
    ledger_order,
)
from market_metarl.live.ledger import Ledger
from market_metarl.types import ConfigError, DataError, RunError

FINAL = ("filled", "canceled", "expired", "rejected", "done_for_day", "stopped", "suspended")
"""Alpaca order statuses after which nothing more fills."""


class OrderRefusedError(DataError):
    """Alpaca refused an order (its message says why); the ledger records it cancelled."""


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class AlpacaBroker(Broker):
    """A :class:`Broker` over an Alpaca account, mirrored in the ledger (see the module docstring).

    Args:
        ledger: The account's ledger (with the Alpaca tables).
        clients: The account's clients (:func:`~market_metarl.live.alpaca_client.open_clients`).
        attempts: POSTs of one order at most, in one run.
        wait: Seconds between them.
    """

    def __init__(
        self, ledger: Ledger, clients: api.Clients, attempts: int = 3, wait: float = 1.0
    ) -> None:
        """Trade the Alpaca account of ``clients`` for the account of ``ledger``."""
        self.ledger, self.clients, self.attempts, self.wait = ledger, clients, attempts, wait
        self._orders: dict[str, Any] = {}
        self._cash: float | None = None
        self._shares: dict[str, float] = {}
        self._prices: dict[str, float] = {}

    @classmethod
    def open(cls, ledger: Ledger) -> AlpacaBroker:
        """The broker of an Alpaca account's ledger (keys from the environment)."""
        row = broker_row(ledger.conn)
        if row is None:
            raise RunError(f"ledger {ledger.path} is not an Alpaca account")
        clients = api.open_clients(bool(row["paper"]), row["base_url"])
        wait = api.retry_wait()
        return cls(ledger, clients) if wait is None else cls(ledger, clients, wait=wait)

    # the step's calls

    def prepare(self) -> str | None:
        """Say when to run instead in the OPG window; else send and read the broker's book.

        Orders earlier runs left written ahead are sent (or found sent, or expired); then the
        cash, the positions and the pending orders are read for :meth:`settle` and
        :meth:`reconcile`.
        """
        wait = api.opg_blackout(self.clients.read)
        if wait is not None:
            return wait
        self.flush()
        self._orders = {}
        for cid, *_ in self.ledger.pending_orders():
            order = self._lookup(cid)
            if order is not None:
                self._orders[cid] = order
        self._cash = float(self.clients.read.get_account().cash)
        self._shares, self._prices = {}, {}
        for p in self.clients.read.get_all_positions():
            qty = float(p.qty)
            self._shares[p.symbol] = -abs(qty) if str(p.side.value) == "short" else qty
            self._prices[p.symbol] = float(p.current_price or p.avg_entry_price)
        return None

    def stage(self, request: OrderRequest) -> None:
        """Write the order and its share quantity ahead (inside the step's transaction)."""
        if request.ref_price is None or not request.ref_price > 0:
            raise DataError(f"order {request.client_id} has no reference price to size it by")
        if not self.ledger.insert_order(
            request.client_id,
            request.decided.isoformat(),
            request.symbol,
            float(request.target_weight),
        ):
            return
        held = self.ledger.positions()
        price = float(request.ref_price)
        equity = request.equity  # a multi-asset account's, every symbol marked
        if equity is None:
            equity = self.ledger.cash() + held.get(request.symbol, 0.0) * price
        wanted = request.target_weight * equity / price
        qty = math.trunc(wanted) - held.get(request.symbol, 0.0)  # OPG: whole shares only
        self.ledger.conn.execute(
            "INSERT INTO alpaca_orders VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
            (
                request.client_id,
                "intent" if qty else "empty",
                request.symbol,
                qty,
                wanted - held.get(request.symbol, 0.0),
                price,
                None if qty else "no whole share to trade",
                _stamp(),
            ),
        )
        if not qty:
            self.ledger.cancel_order(request.client_id)

    def flush(self) -> None:
        """Send every order written ahead and not yet sent (look-up first; see the docstring)."""
        rows = self.ledger.conn.execute(
            "SELECT a.client_id, a.symbol, a.qty, o.date FROM alpaca_orders a "
            "JOIN orders o ON o.client_id = a.client_id WHERE a.state = 'intent' ORDER BY o.date"
        ).fetchall()
        for cid, symbol, qty, decided in rows:
            self._send(str(cid), str(symbol), float(qty), dt.date.fromisoformat(decided))

    def settle(self, bars: pd.DataFrame) -> list[Fill]:
        """Record the broker's fills (read by :meth:`prepare`) dated up to the last bar."""
        last, done = pd.Timestamp(bars.index[-1]).date(), []
        for cid, _, symbol, _ in self.ledger.pending_orders():
            order = self._orders.get(cid)
            if order is None or str(order.status.value) not in FINAL:
                continue
            when = (order.filled_at or order.updated_at).astimezone(api.ET).date()
            if when > last:
                continue
            shares, price = _filled(order)
            self._set(cid, "sent", order)
            if not shares:
                self.ledger.cancel_order(cid)
                continue
            held = self.ledger.positions().get(symbol, 0.0)
            day = when.isoformat()
            self.ledger.record_fill(cid, day, symbol, shares, price, 0.0)
            self.ledger.set_book(self.ledger.cash() - shares * price, {symbol: held + shares}, day)
            done.append(Fill(cid, when, symbol, shares, price, 0.0))
        return done

    def reconcile(self, day: str, prices: Mapping[str, float]) -> float:
        """Record the ledger's book against the broker's; the difference as a fraction of equity.

        Fills the broker made that the ledger records later (their day's bar is not in yet) are
        counted on the ledger's side.
        """
        if self._cash is None:
            raise RunError("reconcile() before prepare(): the broker's book was not read")
        mine, cash = dict(self.ledger.positions()), self.ledger.cash()
        for cid, _, symbol, _ in self.ledger.pending_orders():
            order = self._orders.get(cid)
            if order is not None and str(order.status.value) in FINAL:
                shares, price = _filled(order)
                mine[symbol] = mine.get(symbol, 0.0) + shares
                cash -= shares * price
        marks = {**self._prices, **prices}
        symbols = sorted(set(mine) | set(self._shares))
        value = sum(abs(mine.get(s, 0.0) - self._shares.get(s, 0.0)) * marks[s] for s in symbols)
        equity = cash + sum(q * marks[s] for s, q in mine.items())
        difference = (value + abs(cash - self._cash)) / max(equity, 1e-9)  # a wiped-out book: kill
        self.ledger.conn.execute(
            "INSERT INTO reconciliations (date, checked_at, ledger_shares, broker_shares, "
            "ledger_cash, broker_cash, difference) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                day,
                _stamp(),
                json.dumps({s: q for s, q in mine.items() if q}, sort_keys=True),
                json.dumps(self._shares, sort_keys=True),
                cash,
                self._cash,
                difference,
            ),
        )
        return difference

    # the Broker interface

    def submit(self, request: OrderRequest) -> Order:
        """Write the order ahead (its own transaction), then send it.

        A known client id again returns the existing order and sends nothing.
        """
        if self.ledger.conn.in_transaction:
            raise RunError("submit() inside a transaction: the order must be committed first")
        with self.ledger.transaction():
            self.stage(request)
        self.flush()
        order = self.order(request.client_id)
        assert order is not None
        return order

    def order(self, client_id: str) -> Order | None:
        """The order with this client id, as the ledger knows it, or None."""
        return ledger_order(self.ledger, client_id)

    def positions(self) -> dict[str, float]:
        """Shares held at the broker, by symbol (short: negative)."""
        out = {}
        for p in self.clients.read.get_all_positions():
            qty = float(p.qty)
            out[p.symbol] = -abs(qty) if str(p.side.value) == "short" else qty
        return out

    def cash(self) -> float:
        """Cash at the broker."""
        return float(self.clients.read.get_account().cash)

    def fills(self, since: dt.date | None = None) -> list[Fill]:
        """Fills recorded in the ledger dated ``since`` or later, oldest first."""
        return ledger_fills(self.ledger, since)

    # sending

    def _lookup(self, cid: str) -> Any | None:
        """Alpaca's order with this client id, or None when it has none."""
        try:
            return self.clients.read.get_order_by_client_id(cid)
        except Exception as exc:
            if api.is_not_found(exc):
                return None
            raise

    def _set(self, cid: str, state: str, order: Any = None, detail: str | None = None) -> None:
        """Update the sent state of an order (inside the caller's transaction, or its own)."""
        with self.ledger.transaction():
            self.ledger.conn.execute(
                "UPDATE alpaca_orders SET state = ?, alpaca_id = COALESCE(?, alpaca_id), "
                "status = COALESCE(?, status), detail = COALESCE(?, detail), updated = ? "
                "WHERE client_id = ?",
                (
                    state,
                    None if order is None else str(order.id),
                    None if order is None else str(order.status.value),
                    detail,
                    _stamp(),
                    cid,
                ),
            )
            if state in ("rejected", "expired"):
                self.ledger.cancel_order(cid)

    def _send(self, cid: str, symbol: str, qty: float, decided: dt.date) -> None:
        """POST one order written ahead, exactly once (see the module docstring)."""
        found = self._lookup(cid)
        if found is not None:
            self._set(cid, "sent", found)
            return
        if api.now_et(self.clients.read) >= api.send_deadline(self.clients.read, decided):
            self._set(cid, "expired", detail="not sent before the cutoff of the next open")
            return
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.wait)
            api.fault_point("before-post")
            outcome = self._post(cid, symbol, qty)
            if not isinstance(outcome, str):
                api.fault_point("after-post")
                self._set(cid, "sent", outcome)
                return
            last = outcome
            found = self._lookup(cid)  # taken after all? then it is sent, never twice
            if found is not None:
                self._set(cid, "sent", found)
                return
        raise RunError(
            f"Alpaca did not take order {cid} after {self.attempts} tries ({last}); it stays "
            "written ahead: the next step looks it up and sends it only if Alpaca lacks it"
        )

    def _post(self, cid: str, symbol: str, qty: float) -> Any:
        """POST the OPG market order: Alpaca's order, or why it failed (text); refusals raise."""
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        request = MarketOrderRequest(
            symbol=symbol,
            qty=abs(qty),
            side=OrderSide.BUY if qty > 0 else OrderSide.SELL,
            time_in_force=TimeInForce.OPG,
            client_order_id=cid,
        )
        try:
            return self.clients.orders.submit_order(request)
        except Exception as exc:
            kind, text = api.failure(exc)
            if kind == "refused":
                self._set(cid, "rejected", detail=text)
                raise OrderRefusedError(
                    f"Alpaca refused order {cid} ({symbol} {qty:+g}): {text}"
                ) from None
            return f"{kind}: {text}"


def _filled(order: Any) -> tuple[float, float]:
    """Signed shares filled and their average price."""
    qty = float(order.filled_qty or 0.0)
    price = float(order.filled_avg_price or 0.0)
    return (qty if str(order.side.value) == "buy" else -qty), price


def alpaca_setup(
    paper: bool, url: str | None, symbol: str
) -> tuple[float, Callable[[Any, str], None]]:
    """Check an Alpaca account can back a new ledger; its cash and the ledger's setup.

    The account must be active, not blocked, and hold no position (the ledger starts from cash).

    Returns:
        The account's cash, and ``setup(conn, created)`` that writes the Alpaca tables and row.
    """
    clients = api.open_clients(paper, url)
    account = clients.read.get_account()
    held = {p.symbol: p.qty for p in clients.read.get_all_positions()}
    if str(account.status.value) != "ACTIVE" or account.trading_blocked:
        raise ConfigError(f"Alpaca account {account.account_number} cannot trade now")
    if held:
        raise ConfigError(
            f"Alpaca account {account.account_number} holds {held}; a ledger starts from cash "
            f"only: close them, or use another paper account, to trade {symbol}"
        )

    def setup(conn: Any, created: str) -> None:
        conn.execute(
            "INSERT INTO broker_account VALUES (1, 'alpaca', ?, ?, ?, ?)",
            (int(paper), url, str(account.account_number), created),
        )

    return float(account.cash), setup
