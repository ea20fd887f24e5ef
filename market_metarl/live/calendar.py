"""Trading calendars: which days an exchange trades, and when a session has closed.

``XNYS`` (the New York Stock Exchange, through exchange-calendars) is the default of every feed;
``weekdays`` (Monday to Friday, no holidays) serves synthetic sources, whose dates are business
days. Names resolve through a closed registry.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from market_metarl.types import DataError

CALENDAR_START = pd.Timestamp("1990-01-01")
"""First day the calendars cover (exchange-calendars covers only ~20 years unless asked)."""

WEEKDAY_CLOSE_UTC = pd.Timedelta(hours=21)
"""Close of a ``weekdays`` session, as a time of day in UTC (16:00 New York, winter time)."""


@dataclass(frozen=True)
class TradingCalendar:
    """Sessions of one exchange, from :data:`CALENDAR_START` to about a year ahead.

    Attributes:
        name: ``XNYS`` or ``weekdays``.
    """

    name: str

    def sessions(
        self, start: dt.date | pd.Timestamp | str, end: dt.date | pd.Timestamp | str
    ) -> pd.DatetimeIndex:
        """Sessions from ``start`` to ``end`` (both inclusive), tz-naive midnights."""
        lo, hi = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        if hi < lo:
            return pd.DatetimeIndex([], name="date")
        self._check_range(lo)
        if self.name == "weekdays":
            days = pd.bdate_range(lo, hi)
        else:
            hi = min(hi, _xnys().last_session)
            days = _xnys().sessions_in_range(lo, hi)
        return pd.DatetimeIndex(days.tz_localize(None) if days.tz else days, name="date")

    def is_session(self, day: dt.date | pd.Timestamp | str) -> bool:
        """Whether the exchange traded on ``day``."""
        ts = pd.Timestamp(day).normalize()
        return len(self.sessions(ts, ts)) == 1

    def previous_session(self, day: dt.date | pd.Timestamp) -> pd.Timestamp:
        """The last session strictly before ``day``."""
        ts = pd.Timestamp(day).normalize()
        found = self.sessions(ts - pd.Timedelta(days=15), ts - pd.Timedelta(days=1))
        if not len(found):
            raise DataError(f"{self.name}: no session in the two weeks before {ts.date()}")
        return pd.Timestamp(found[-1])

    def next_session(self, day: dt.date | pd.Timestamp) -> pd.Timestamp:
        """The first session strictly after ``day``."""
        ts = pd.Timestamp(day).normalize()
        found = self.sessions(ts + pd.Timedelta(days=1), ts + pd.Timedelta(days=15))
        if not len(found):
            raise DataError(f"{self.name}: no session in the two weeks after {ts.date()}")
        return pd.Timestamp(found[0])

    def session_close(self, day: dt.date | pd.Timestamp | str) -> pd.Timestamp:
        """When the session of ``day`` closes, in UTC."""
        ts = pd.Timestamp(day).normalize()
        if self.name == "weekdays":
            return (ts + WEEKDAY_CLOSE_UTC).tz_localize("UTC")
        close: Any = _xnys().session_close(ts)
        return pd.Timestamp(close)

    def last_closed_session(self, now: pd.Timestamp) -> pd.Timestamp:
        """The latest session whose close is at or before ``now`` (a tz-aware time)."""
        today = now.tz_convert("America/New_York").tz_localize(None).normalize()
        if self.is_session(today) and self.session_close(today) <= now:
            return today
        return self.previous_session(today)

    def _check_range(self, lo: pd.Timestamp) -> None:
        if lo < CALENDAR_START:
            raise DataError(
                f"the {self.name} calendar starts on {CALENDAR_START.date()}; "
                f"{lo.date()} is before it"
            )


@functools.lru_cache(maxsize=1)
def _xnys() -> Any:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange-calendars 4.x reads ``Series.values`` of tz-aware data while building the
        # calendar, which pandas 3.1 deprecates; the values it gets are the same.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar("XNYS", start=CALENDAR_START)


CALENDARS: tuple[str, ...] = ("XNYS", "weekdays")


def get_calendar(name: str) -> TradingCalendar:
    """The calendar called ``name``; an unknown name is an error listing the valid ones."""
    if name not in CALENDARS:
        raise DataError(f"unknown trading calendar {name!r}; valid: {', '.join(CALENDARS)}")
    return TradingCalendar(name)
