"""A fake Alpaca trading API on 127.0.0.1: the endpoints the Alpaca broker calls, with state.

It serves ``/v2/account``, ``/v2/clock``, ``/v2/calendar``, ``/v2/positions``, ``/v2/orders``
(create, list) and ``/v2/orders:by_client_order_id``, in the shapes of the recorded responses in
``tests/fixtures/alpaca`` (see its README for the Alpaca reference pages). It keeps the account's
cash, positions and orders, enforces the OPG rules (window, whole shares, unique client ids) and
fills open OPG orders when a test calls :meth:`FakeAlpaca.open_day` with the day's open price.

Faults on the next order POSTs (:attr:`FakeAlpaca.faults`, consumed in order):

- ``504-after-accept``: the order is taken, the answer is a 504;
- ``429``: a 429, the order is not taken;
- ``drop``: the order is taken, the connection drops in the middle of the answer;
- ``slow``: the order is taken, the answer comes after :attr:`FakeAlpaca.delay` seconds (the
  client times out first);
- ``reject-403`` / ``reject-422``: Alpaca's error body, nothing taken.

Market data: ``/v2/stocks/bars`` and ``/v2/stocks/{symbol}/bars`` serve :attr:`FakeAlpaca.daily`
(``timeframe=1Day`` only) in the shape of Alpaca's reference (``{"bars": {"SPY": [{"t", "o", "h",
"l", "c", "v", "n", "vw"}]}, "next_page_token": ...}``; the single-symbol route has ``"bars": [...]``
and ``"symbol"``), a daily bar stamped at midnight New York time, pages of
:attr:`FakeAlpaca.page_size` bars. A day's bar appears at its open; until 16:00 it is partial (every
price the open).

Chaos (:meth:`FakeAlpaca.inject`): each request fails with a seeded probability, with a 429, 500,
503 or 504 (nothing done), or, for an order POST, a ``504-after-accept``, in turn; counted by kind
in :attr:`FakeAlpaca.injected`. A client killed mid-request is not reported.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alpaca"
ET = ZoneInfo("America/New_York")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


ERRORS = fixture("errors.json")


def at(day: str, hhmm: str) -> dt.datetime:
    """``day`` at ``hhmm`` New York time."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(hhmm), ET)


def _num(x: float) -> str:
    return repr(float(x)).removesuffix(".0")


class FakeAlpaca:
    """The fake server's state; :meth:`start` serves it in a thread on 127.0.0.1."""

    def __init__(self, sessions: Iterable[dt.date], cash: float = 100_000.0) -> None:
        self.sessions = sorted(set(sessions))
        self.cash = cash
        self.positions: dict[str, float] = {}
        self.last_price: dict[str, float] = {}
        self.orders: list[dict[str, Any]] = []
        self.posts = 0
        self.faults: list[str] = []
        self.delay = 1.0
        self.requests: list[tuple[str, str]] = []
        self.now = at(self.sessions[0].isoformat(), "19:30")
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.daily: dict[str, list[tuple[dt.date, float, float, float, float, float]]] = {}
        self.page_size = 10_000
        self.chaos: tuple[random.Random, float] | None = None
        self.injected: dict[str, int] = {}

    # the test's controls

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeAlpaca:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.handle(self, "GET")

            def do_POST(self) -> None:
                state.handle(self, "POST")

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request (the kill tests): nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def evening(self, day: str) -> None:
        """The clock at 19:30 ET on ``day`` (OPG orders accepted again)."""
        self.now = at(day, "19:30")

    def open_day(self, day: str, prices: dict[str, float]) -> None:
        """The open of ``day``: every open OPG order fills at ``prices``; the clock moves on."""
        with self.lock:
            self.now = at(day, "09:30")
            for order in self.orders:
                if order["status"] != "accepted":
                    continue
                price, qty = prices[order["symbol"]], float(order["qty"])
                signed = qty if order["side"] == "buy" else -qty
                self.cash -= signed * price
                symbol = order["symbol"]
                self.positions[symbol] = self.positions.get(symbol, 0.0) + signed
                self.last_price[symbol] = price
                stamp = self.now.astimezone(dt.UTC).isoformat()
                order.update(
                    status="filled",
                    filled_qty=order["qty"],
                    filled_avg_price=_num(price),
                    filled_at=stamp,
                    updated_at=stamp,
                )
            self.positions = {s: q for s, q in self.positions.items() if q}

    def inject(self, seed: int, rate: float) -> None:
        """Fail each request with probability ``rate`` (seeded; see the module docstring)."""
        self.chaos = (random.Random(seed), rate)

    def _chaos(self, method: str, path: str) -> str | None:
        if self.chaos is None or self.chaos[0].random() >= self.chaos[1]:
            return None
        kinds = ["429", "500", "503", "504"]
        if method == "POST" and path == "/v2/orders":
            kinds.append("504-after-accept")
        kind = kinds[sum(self.injected.values()) % len(kinds)]  # every kind, in turn
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind

    def taken(self) -> list[dict[str, Any]]:
        """The orders the server holds."""
        return list(self.orders)

    # serving

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(req.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append((method, url.path))
            if not req.headers.get("APCA-API-KEY-ID") or not req.headers.get("APCA-API-SECRET-KEY"):
                return self.send(req, 401, ERRORS["unauthorized"])
            fault = self._chaos(method, url.path)
            if fault is not None and fault != "504-after-accept":
                code = int(fault)
                return self.send(req, code, ERRORS["rate_limit"] if code == 429 else "server error")
            if method == "POST" and url.path == "/v2/orders":
                length = int(req.headers.get("Content-Length", 0))
                if fault is not None:
                    self.faults.insert(0, fault)
                return self.post_order(req, json.loads(req.rfile.read(length)))
            if (
                method == "GET"
                and url.path.startswith("/v2/stocks/")
                and url.path.endswith("/bars")
            ):
                return self.send(req, *self.stock_bars(url.path, query))
            route = {
                "/v2/account": self.account,
                "/v2/clock": self.clock,
                "/v2/calendar": self.calendar,
                "/v2/positions": self.position_list,
                "/v2/orders": lambda q: (200, self.orders),
                "/v2/orders:by_client_order_id": self.by_client_id,
            }.get(url.path)
            if method != "GET" or route is None:
                return self.send(req, 404, {"code": 40410000, "message": "endpoint not found"})
            status, body = route(query)
            return self.send(req, status, body)

    def send(self, req: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def account(self, query: dict[str, str]) -> tuple[int, Any]:
        body = fixture("account.json")
        value = sum(q * self.last_price[s] for s, q in self.positions.items())
        body.update(cash=_num(self.cash), equity=_num(self.cash + value))
        body.update(portfolio_value=body["equity"], long_market_value=_num(value))
        return 200, body

    def clock(self, query: dict[str, str]) -> tuple[int, Any]:
        body = fixture("clock.json")
        later = [d for d in self.sessions if at(d.isoformat(), "16:00") > self.now]
        nxt = later[0].isoformat() if later else self.sessions[-1].isoformat()
        is_open = at(nxt, "09:30") <= self.now < at(nxt, "16:00")
        body.update(timestamp=self.now.isoformat(), is_open=is_open)
        body.update(next_open=at(nxt, "09:30").isoformat(), next_close=at(nxt, "16:00").isoformat())
        return 200, body

    def calendar(self, query: dict[str, str]) -> tuple[int, Any]:
        lo, hi = (dt.date.fromisoformat(query[k]) for k in ("start", "end"))
        days = []
        for d in self.sessions:
            if lo <= d <= hi:
                day = fixture("calendar_day.json")
                day.update(date=d.isoformat(), settlement_date=d.isoformat())
                days.append(day)
        return 200, days

    def stock_bars(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """Daily bars up to the clock's time, in pages (see the module docstring)."""
        single = path != "/v2/stocks/bars"
        symbols = [path.split("/")[3]] if single else query.get("symbols", "").split(",")
        if query.get("timeframe") != "1Day":
            return 422, {"code": 42210000, "message": "the fake serves timeframe=1Day only"}
        lo = dt.datetime.fromisoformat(query["start"]) if "start" in query else None
        hi = dt.datetime.fromisoformat(query["end"]) if "end" in query else self.now
        rows: list[tuple[str, dict[str, Any]]] = []
        for symbol in symbols:
            for day, o, h, low, c, v in self.daily.get(symbol, []):
                stamp = at(day.isoformat(), "00:00")
                if at(day.isoformat(), "09:30") > min(self.now, hi) or (lo and stamp < lo):
                    continue
                if self.now < at(day.isoformat(), "16:00"):  # today's bar, still forming
                    h, low, c, v = o, o, o, 100.0
                t = stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                bar = {"t": t, "o": o, "h": h, "l": low, "c": c, "v": v, "n": 1000, "vw": c}
                rows.append((symbol, bar))
        first = int(query.get("page_token") or 0)
        size = min(int(query.get("limit") or 1000), self.page_size)
        page = rows[first : first + size]
        token = str(first + size) if first + size < len(rows) else None
        if single:
            return 200, {
                "bars": [b for _, b in page],
                "symbol": symbols[0],
                "next_page_token": token,
            }
        grouped: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            grouped.setdefault(symbol, []).append(bar)
        return 200, {"bars": grouped, "next_page_token": token}

    def position_list(self, query: dict[str, str]) -> tuple[int, Any]:
        out = []
        for symbol, qty in sorted(self.positions.items()):
            p, price = fixture("position.json"), self.last_price[symbol]
            p.update(symbol=symbol, qty=_num(qty), qty_available=_num(qty))
            p.update(side="long" if qty > 0 else "short", market_value=_num(qty * price))
            p.update(current_price=_num(price), lastday_price=_num(price))
            p.update(avg_entry_price=_num(price), cost_basis=_num(qty * price))
            out.append(p)
        return 200, out

    def by_client_id(self, query: dict[str, str]) -> tuple[int, Any]:
        for order in self.orders:
            if order["client_order_id"] == query.get("client_order_id"):
                return 200, order
        return 404, ERRORS["not_found"]

    def post_order(self, req: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        self.posts += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault == "429":
            return self.send(req, 429, ERRORS["rate_limit"])
        if fault in ("reject-403", "reject-422"):
            code = int(fault[-3:])
            return self.send(
                req, code, ERRORS["insufficient_buying_power" if code == 403 else "fractional_opg"]
            )
        refusal = self.refusal(body)
        if refusal is not None:
            return self.send(req, *refusal)
        order = self.new_order(body)
        if fault == "504-after-accept":
            return self.send(req, 504, "upstream request timeout")
        if fault == "slow":  # answered late, without holding the state's lock
            self.lock.release()
            try:
                time.sleep(self.delay)
            finally:
                self.lock.acquire()
            return self.send(req, 200, order)
        if fault == "drop":  # headers promise more than is sent, then the connection closes
            data = json.dumps(order).encode()
            req.send_response(200)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            req.wfile.write(data[: len(data) // 2])
            req.wfile.flush()
            req.close_connection = True
            return None
        return self.send(req, 200, order)

    def refusal(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        if any(o["client_order_id"] == body.get("client_order_id") for o in self.orders):
            return 422, ERRORS["duplicate_client_id"]
        if body.get("time_in_force") == "opg":
            t, today = self.now.timetz().replace(tzinfo=None), self.now.date()
            if today in self.sessions and dt.time(9, 28) <= t < dt.time(19, 0):
                return 422, ERRORS["opg_window"]
            if float(body["qty"]) != int(float(body["qty"])):
                return 422, ERRORS["fractional_opg"]
        return None

    def new_order(self, body: dict[str, Any]) -> dict[str, Any]:
        order = copy.deepcopy(fixture("order.json"))
        stamp = self.now.astimezone(dt.UTC).isoformat()
        order.update(
            id=str(uuid.uuid4()),
            client_order_id=body["client_order_id"],
            created_at=stamp,
            updated_at=stamp,
            submitted_at=stamp,
            symbol=body["symbol"],
            qty=_num(float(body["qty"])),
            side=body["side"],
            position_intent="buy_to_open" if body["side"] == "buy" else "sell_to_close",
            time_in_force=body["time_in_force"],
            type=body["type"],
            order_type=body["type"],
        )
        self.orders.append(order)
        return order
