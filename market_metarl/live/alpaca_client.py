"""Alpaca's trading API through alpaca-py: the clients, their failures, and the OPG window.

alpaca-py (the ``alpaca`` extra) is imported here only, when an Alpaca account is opened. Two
``TradingClient`` objects share the keys: one reads (account, clock, calendar, positions, orders)
with alpaca-py's own retries (on 429 and 504: safe for a read), one sends orders with them OFF
(``RESTClient`` retries a POST that answered 429 or 504 up to ``retry_attempts`` times, and
``retry_attempts=0`` means "the default, 3": so ``_retry`` is set to 0 on the object). After a
failed POST the broker looks the order up by its client id before it sends anything again. Every
request has a timeout (``requests`` has none by default).

Alpaca docs: https://docs.alpaca.markets/reference/postorder (orders),
https://docs.alpaca.markets/docs/orders-at-alpaca#time-in-force (OPG: "OPG orders submitted after
9:28am but before 7:00pm ET will be rejected"; fractional quantities only for ``day`` orders).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from market_metarl.types import ConfigError

KEY_ENV, SECRET_ENV, URL_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL"
"""Where the keys (never stored in the ledger) and the base URL override come from."""

DATA_URL_ENV = "APCA_API_DATA_URL"
"""Override of the market-data API's base URL (default: alpaca-py's, https://data.alpaca.markets)."""

RETRY_WAIT_ENV = "MARKET_METARL_ALPACA_RETRY_WAIT"
"""Seconds between retries of a read that answered 429/504 and between POSTs of one order
(default: alpaca-py's 3 s for reads, the broker's 1 s for POSTs); the soak test shortens it."""

LIVE_URL = "https://api.alpaca.markets"
"""Alpaca's live (real money) trading endpoint."""

FAULT_ENV = "MARKET_METARL_ALPACA_FAULT"
"""Test hook: set to a :func:`fault_point` name, the process SIGKILLs itself there."""

TIMEOUT = 30.0
"""Seconds a request may take before it counts as an unsure failure (then looked up)."""

ET = ZoneInfo("America/New_York")
OPG_CUTOFF, OPG_REOPEN = dt.time(9, 28), dt.time(19, 0)
"""Alpaca refuses OPG orders from 9:28 to 19:00 ET on a trading day."""


@dataclass(frozen=True)
class Clients:
    """The two clients of one Alpaca account: ``read`` retries, ``orders`` never does."""

    read: Any
    orders: Any
    url: str


def open_clients(paper: bool, url: str | None, timeout: float = TIMEOUT) -> Clients:
    """Clients for the paper (or live) API at ``APCA_API_BASE_URL``, else ``url``, else Alpaca's.

    Raises:
        ConfigError: alpaca-py is not installed, the keys are not set, or a paper account would
            reach the live endpoint.
    """
    try:
        import requests
        from alpaca.trading.client import TradingClient
    except ImportError:
        raise ConfigError(
            "--broker alpaca needs alpaca-py: pip install 'market-metarl[alpaca]'"
        ) from None
    key, secret = _keys("--broker alpaca")
    base = os.environ.get(URL_ENV, "").strip().rstrip("/") or url or None
    if paper and base == LIVE_URL:
        raise ConfigError(
            f"{URL_ENV or '--alpaca-url'} is Alpaca's live endpoint {LIVE_URL} but the account "
            "is a paper one; unset it (or create a live account with --alpaca-live)"
        )

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            return super().request(*args, **kwargs)

    def make() -> Any:
        client = TradingClient(key, secret, paper=paper, url_override=base)
        client._session = TimeoutSession()
        wait = retry_wait()
        if wait is not None:
            client._retry_wait = wait  # type: ignore[assignment]  # alpaca-py sleeps on it
        return client

    read, orders = make(), make()
    orders._retry = 0  # see the module docstring: a resent POST is decided by a look-up
    return Clients(read, orders, str(getattr(read._base_url, "value", read._base_url)))


def _keys(what: str) -> tuple[str, str]:
    """The API keys from the environment; ``what`` needs them (for the error message)."""
    key, secret = os.environ.get(KEY_ENV, "").strip(), os.environ.get(SECRET_ENV, "").strip()
    if not key or not secret:
        raise ConfigError(
            f"{what} needs the account's API keys: set {KEY_ENV} and {SECRET_ENV} "
            "in the environment (paper keys: Alpaca dashboard, paper account, API keys)"
        )
    return key, secret


def retry_wait() -> float | None:
    """:data:`RETRY_WAIT_ENV` in seconds (None: not set).

    Raises:
        ConfigError: It is not a number >= 0.
    """
    text = os.environ.get(RETRY_WAIT_ENV, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{RETRY_WAIT_ENV} must be seconds >= 0, got {text!r}")
    return value


def open_data_client(spec: str, timeout: float = TIMEOUT) -> Any:
    """alpaca-py's ``StockHistoricalDataClient`` at :data:`DATA_URL_ENV` (else Alpaca's).

    Reads retry on 429 and 504 (safe for a read); every request has a timeout.

    Raises:
        ConfigError: alpaca-py is not installed or the keys are not set (``spec`` names the feed).
    """
    try:
        import requests
        from alpaca.data.historical import StockHistoricalDataClient
    except ImportError:
        raise ConfigError(
            f"the {spec} feed needs alpaca-py: pip install 'market-metarl[alpaca]'"
        ) from None
    key, secret = _keys(f"the {spec} feed")
    base = os.environ.get(DATA_URL_ENV, "").strip().rstrip("/") or None

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            return super().request(*args, **kwargs)

    client = StockHistoricalDataClient(key, secret, url_override=base)
    client._session = TimeoutSession()
    wait = retry_wait()
    if wait is not None:
        client._retry_wait = wait  # type: ignore[assignment]  # alpaca-py sleeps on it
    return client


def failure(exc: BaseException) -> tuple[str, str]:
    """What a failed request means, and its text.

    Returns:
        ``(kind, text)``; kind ``busy`` (429: refused for now, not taken), ``unsure`` (5xx,
        timeout, connection lost: the broker may have taken it), ``duplicate`` (the client id is
        taken: it was) or ``refused`` (any other 4xx: Alpaca's error message in ``text``).

    Raises:
        BaseException: ``exc`` itself when it is not a failure of the request.
    """
    import requests
    from alpaca.common.exceptions import APIError

    if isinstance(exc, requests.RequestException):
        return "unsure", f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, APIError):
        raise exc
    status = exc.status_code
    try:
        body = json.loads(str(exc))
        text = f"{body['message']} (HTTP {status}, code {body['code']})"
    except (ValueError, KeyError, TypeError):
        text = f"HTTP {status}: {str(exc)[:200]}"
    if status == 429:
        return "busy", text
    if status is None or status >= 500:
        return "unsure", text
    if status == 422 and "client_order_id" in text and "unique" in text:
        return "duplicate", text
    return "refused", text


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` is Alpaca's 404 (no order with that client id)."""
    from alpaca.common.exceptions import APIError

    return isinstance(exc, APIError) and exc.status_code == 404


def now_et(client: Any) -> dt.datetime:
    """The broker clock's time, in New York."""
    stamp: dt.datetime = client.get_clock().timestamp
    return stamp.astimezone(ET)


def sessions_after(client: Any, day: dt.date, days: int = 10) -> list[dt.date]:
    """The trading days after ``day`` within ``days`` calendar days (Alpaca's calendar)."""
    from alpaca.trading.requests import GetCalendarRequest

    cal = client.get_calendar(
        GetCalendarRequest(start=day + dt.timedelta(days=1), end=day + dt.timedelta(days=days))
    )
    return [c.date for c in cal]


def send_deadline(client: Any, decided: dt.date) -> dt.datetime:
    """The last moment an OPG order decided after ``decided``'s close fills at the next open."""
    following = sessions_after(client, decided)
    nxt = following[0] if following else decided + dt.timedelta(days=1)
    return dt.datetime.combine(nxt, OPG_CUTOFF, ET)


def opg_blackout(client: Any) -> str | None:
    """When Alpaca refuses OPG orders now: the one line that says when to run instead."""
    now = now_et(client)
    if not OPG_CUTOFF <= now.time() < OPG_REOPEN:
        return None
    if now.date() not in sessions_after(client, now.date() - dt.timedelta(days=1), 1):
        return None
    reopen = dt.datetime.combine(now.date(), OPG_REOPEN, ET).astimezone(dt.UTC)
    return (
        f"Alpaca refuses opening (OPG) orders from 09:28 to 19:00 ET and it is {now:%H:%M} ET: "
        f"nothing was sent; run the step again after 19:00 ET ({reopen:%H:%M} UTC)"
    )


def fault_point(name: str) -> None:
    """Die here (SIGKILL) when :data:`FAULT_ENV` names this point: the crash tests' hook."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
