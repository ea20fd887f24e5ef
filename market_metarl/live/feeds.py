"""Feeds: validated daily bars up to an as-of date, checked against the exchange calendar.

- :class:`YFinanceFeed` (``yfinance:SPY``): fresh bars through the data layer's cached yfinance
  source (the cache's tail is refreshed on every read; ``yfinance:SPY?offline=1`` reads the cache
  only).
- :class:`AlpacaFeed` (``alpaca:SPY``, ``alpaca:SPY?feed=iex``): daily bars from Alpaca's market-data
  API through alpaca-py (keys from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``), checked by the
  bars contract; the bar of a session that has not closed yet (Alpaca serves a partial one during
  the day) is dropped.
- :class:`ReplayFeed` (any other source: ``bundled:SPY``, ``csv:FILE``, ``synthetic:...``): replays
  a stored history, revealing bars only up to the as-of date, so the whole daily loop runs offline
  and in tests.

A feed refuses (:class:`~market_metarl.types.DataError`) a day the exchange is closed, an as-of in
the future or before the data, and stale data (:class:`StaleDataError`: no bar for the as-of
session). :func:`require_sessions` refuses a gap (a missing session) in the span a step reads.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import pandas as pd

from market_metarl.data.bars import validate_bars
from market_metarl.data.sources import load_bars, parse_source
from market_metarl.data.tasks import symbol_name
from market_metarl.live.calendar import TradingCalendar, get_calendar
from market_metarl.types import DataError


class StaleDataError(DataError):
    """The feed has no bar for the as-of session yet (it may come later: the live loop retries)."""


def utc_now() -> pd.Timestamp:
    """The current time, in UTC."""
    return pd.Timestamp.now(tz="UTC")


class Feed(ABC):
    """Daily bars of one symbol, revealed up to an as-of date.

    Attributes:
        spec: The source spec the feed reads (what the ledger records).
        symbol: The symbol traded.
        calendar: The exchange calendar the bars are checked against.
        live: A live feed refuses a session that has not closed yet.
    """

    live: bool = False
    spec: str
    symbol: str
    calendar: TradingCalendar

    @abstractmethod
    def history(self) -> pd.DataFrame:
        """Every bar the feed knows now (validated by the data layer)."""

    @abstractmethod
    def default_asof(self, after: dt.date | None, now: pd.Timestamp) -> dt.date | None:
        """The as-of date a step takes when none is given (None: nothing new to step)."""

    def bars(self, asof: dt.date, now: pd.Timestamp | None = None) -> pd.DataFrame:
        """Bars dated up to ``asof`` (inclusive); the last one is the ``asof`` session.

        Raises:
            DataError: ``asof`` is in the future, not a session, or before the data.
            StaleDataError: The feed has no bar for the ``asof`` session.
        """
        now = utc_now() if now is None else now
        day = pd.Timestamp(asof).normalize()
        today = now.tz_convert("America/New_York").tz_localize(None).normalize()
        if day > today:
            raise DataError(
                f"--asof {day.date()} is in the future (today is {today.date()}); "
                "give a past trading day"
            )
        if not self.calendar.is_session(day):
            prev = self.calendar.previous_session(day).date()
            raise DataError(
                f"the exchange ({self.calendar.name}) is closed on {day.date()} "
                f"(weekend or holiday); the previous session is {prev}"
            )
        if self.live:
            close = self.calendar.session_close(day)
            if now < close:
                raise StaleDataError(
                    f"the {day.date()} session has not closed yet (it closes at {close} UTC); "
                    "step after the close"
                )
        bars = self.history()
        if day < bars.index[0]:
            raise DataError(
                f"--asof {day.date()} is before the data: {self.spec} starts on "
                f"{bars.index[0].date()}"
            )
        seen = bars.loc[bars.index <= day]
        last = seen.index[-1]
        if last < day:
            raise StaleDataError(
                f"{self.spec} is stale: its last bar is {last.date()} but {self.calendar.name} "
                f"traded on {day.date()}; fetch fresh data or give --asof {last.date()}"
            )
        return seen


class ReplayFeed(Feed):
    """A stored history (bundled, CSV or synthetic), revealed only up to the as-of date."""

    def __init__(self, spec: str, calendar: str | None = None) -> None:
        """Replay ``spec`` on ``calendar`` (default: weekdays for a synthetic source, else XNYS)."""
        parsed = parse_source(spec)
        if parsed.kind == "yfinance":
            raise DataError(f"{spec} is a live source; open it with YFinanceFeed")
        self.spec, self.symbol = spec, symbol_name(spec)
        default = "weekdays" if parsed.kind == "synthetic" else "XNYS"
        self.calendar = get_calendar(calendar or default)
        self._bars: pd.DataFrame | None = None

    def history(self) -> pd.DataFrame:
        """Every bar of the source."""
        if self._bars is None:
            self._bars = load_bars(self.spec)
        return self._bars

    @property
    def end(self) -> dt.date:
        """The last date of the stored history."""
        return pd.Timestamp(self.history().index[-1]).date()

    def default_asof(self, after: dt.date | None, now: pd.Timestamp) -> dt.date | None:
        """The session after ``after`` (the last step) within the data."""
        if after is None:
            return None
        index = self.history().index
        later = index[index > pd.Timestamp(after)]
        return pd.Timestamp(later[0]).date() if len(later) else None


class YFinanceFeed(Feed):
    """Fresh daily bars from yfinance through the data layer's cache (``yfinance:SPY``)."""

    live = True

    def __init__(
        self, spec: str, loader: Callable[[str], pd.DataFrame] = load_bars, calendar: str = "XNYS"
    ) -> None:
        """Read ``spec`` with ``loader`` on the exchange ``calendar``."""
        parsed = parse_source(spec)
        if parsed.kind != "yfinance":
            raise DataError(f"{spec} is not a yfinance source; give yfinance:SYMBOL")
        self.spec, self.symbol = spec, symbol_name(spec)
        self.calendar = get_calendar(calendar)
        self._loader = loader

    def history(self) -> pd.DataFrame:
        """Every bar of the source."""
        return self._loader(self.spec)

    def default_asof(self, after: dt.date | None, now: pd.Timestamp) -> dt.date | None:
        """The latest session that has closed."""
        day = self.calendar.last_closed_session(now).date()
        return None if after is not None and day <= after else day


ALPACA_HISTORY_START = pd.Timestamp("2016-01-01", tz="UTC")
"""First day an :class:`AlpacaFeed` asks for (Alpaca's stock bars start in 2016)."""

ALPACA_SIP_DELAY = pd.Timedelta(minutes=16)
"""How far behind now an :class:`AlpacaFeed`'s request ends: the free plan refuses SIP data of the
last 15 minutes, and a daily bar is complete at the close, long before."""

ALPACA_REFRESH = pd.Timedelta(seconds=60)
"""How long an :class:`AlpacaFeed` reuses the bars it fetched (one step reads them twice)."""

_ALPACA_SPEC = re.compile(r"alpaca:([A-Z][A-Z0-9.]{0,9})(?:\?feed=(iex|sip))?")


class AlpacaFeed(Feed):
    """Daily bars from Alpaca's market-data API (``alpaca:SPY``; ``?feed=iex`` on the free plan).

    Bars come from alpaca-py's ``StockHistoricalDataClient`` (``/v2/stocks/bars``, split and
    dividend adjusted, ``timeframe=1Day``), dated by their session: Alpaca stamps a daily bar at
    midnight New York time, i.e. 04:00/05:00 UTC of the same date, and the bars contract turns it
    into that UTC date. A bar whose session closes after ``clock()`` (today's, still forming) is
    dropped, so a decision never reads a partial bar.
    """

    live = True
    clock: Callable[[], pd.Timestamp]
    """Now (UTC): bars of sessions that close later are dropped (the live loop sets its own)."""

    def __init__(
        self,
        spec: str,
        calendar: str = "XNYS",
        clock: Callable[[], pd.Timestamp] = utc_now,
        client: Any = None,
    ) -> None:
        """Read ``spec`` on the exchange ``calendar``; ``clock`` gives now (UTC).

        ``client`` is a data client (default: the one of
        :func:`~market_metarl.live.alpaca_client.open_data_client`, opened on first use).

        Raises:
            DataError: ``spec`` is not ``alpaca:SYMBOL`` or ``alpaca:SYMBOL?feed=iex|sip``.
        """
        match = _ALPACA_SPEC.fullmatch(spec.strip())
        if match is None:
            raise DataError(
                f"bad Alpaca feed {spec!r}: give alpaca:SYMBOL (upper case, e.g. alpaca:SPY), "
                "optionally with ?feed=iex (free plan) or ?feed=sip"
            )
        self.spec, self.symbol, self._source = spec.strip(), match.group(1), match.group(2)
        self.calendar = get_calendar(calendar)
        self.clock, self._client = clock, client
        self._cached: tuple[pd.Timestamp, pd.DataFrame] | None = None

    def history(self) -> pd.DataFrame:
        """Every closed session's bar since :data:`ALPACA_HISTORY_START`, validated."""
        now = self.clock()
        if self._cached is not None and now - self._cached[0] < ALPACA_REFRESH:
            return self._cached[1]
        frame = self._fetch(now)
        days = pd.DatetimeIndex(frame.index).tz_convert("UTC").tz_localize(None).normalize()
        today = now.tz_convert("America/New_York").tz_localize(None).normalize()
        # only today's session can still be open; a bar on a closed day is kept for
        # require_sessions to refuse, with its message
        closed = [
            d < today or not self.calendar.is_session(d) or self.calendar.session_close(d) <= now
            for d in days
        ]
        bars, _ = validate_bars(frame.loc[closed], source=self.spec)
        self._cached = (now, bars)
        return bars

    def _fetch(self, now: pd.Timestamp) -> pd.DataFrame:
        """The raw bars (indexed by their UTC timestamps) from Alpaca, all pages."""
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        from market_metarl.live.alpaca_client import open_data_client

        if self._client is None:
            self._client = open_data_client(self.spec)
        request = StockBarsRequest(
            symbol_or_symbols=self.symbol,
            timeframe=TimeFrame.Day,
            start=ALPACA_HISTORY_START.to_pydatetime(),
            end=(now - ALPACA_SIP_DELAY).to_pydatetime(),
            adjustment=Adjustment.ALL,
            feed=DataFeed(self._source) if self._source else None,
        )
        got = self._client.get_stock_bars(request)
        rows = got.data.get(self.symbol, [])
        if not rows:
            raise DataError(
                f"{self.spec}: Alpaca returned no daily bars for {self.symbol} since "
                f"{ALPACA_HISTORY_START.date()}; check the symbol (and your data plan)"
            )
        index = pd.DatetimeIndex([pd.Timestamp(b.timestamp) for b in rows], name="date")
        columns = {c: [getattr(b, c) for b in rows] for c in ("open", "high", "low", "close")}
        return pd.DataFrame({**columns, "volume": [b.volume for b in rows]}, index=index)

    def default_asof(self, after: dt.date | None, now: pd.Timestamp) -> dt.date | None:
        """The latest session that has closed."""
        day = self.calendar.last_closed_session(now).date()
        return None if after is not None and day <= after else day


def open_feed(spec: str) -> Feed:
    """The feed of a source spec: yfinance and alpaca sources are live, the others replayed."""
    if spec.strip().startswith("alpaca:"):
        return AlpacaFeed(spec)
    if parse_source(spec).kind == "yfinance":
        return YFinanceFeed(spec)
    return ReplayFeed(spec)


def require_sessions(
    bars: pd.DataFrame, start: dt.date | pd.Timestamp | str, calendar: TradingCalendar, what: str
) -> None:
    """Refuse a gap in ``bars`` from ``start`` on.

    Every session from ``start`` to the last bar must have a bar, and no bar may fall on a day the
    exchange was closed.

    Raises:
        DataError: Names the missing (or extra) days and how to fix the data.
    """
    lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(bars.index[-1]).normalize()
    expected = calendar.sessions(lo, hi)
    have = pd.DatetimeIndex(bars.index[(bars.index >= lo) & (bars.index <= hi)]).normalize()
    missing = expected.difference(have)
    if len(missing):
        days = ", ".join(str(d.date()) for d in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(
            f"{what}: gap in the data: no bar for the {calendar.name} session(s) {days}{more} "
            f"(between {lo.date()} and {hi.date()}, the span this step reads); "
            "repair the data (e.g. fetch again) before stepping"
        )
    extra = have.difference(expected)
    if len(extra):
        days = ", ".join(str(d.date()) for d in extra[:5])
        raise DataError(
            f"{what}: bar(s) on {days}, when {calendar.name} was closed; "
            "remove them or use the right calendar"
        )
