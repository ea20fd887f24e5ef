"""The scheduled live loop (``paper run --live``): step after each close, catch up on restart.

It waits for each session's close, steps, submits before the next open, and after a restart
steps the sessions it missed.

Timing (exchange calendar of the feed, :mod:`market_metarl.live.calendar`):

- a session ``D`` is *due* at its step time: the close of ``D`` plus :data:`AFTER_CLOSE` (the data
  vendors have published the day's bar by then); for an Alpaca account not before
  :data:`ALPACA_REOPEN` New York time on ``D`` (Alpaca refuses opening orders from 9:28 to 19:00
  ET), which leaves the evening and night to send the order before the open of ``D+1``;
- every due session after the ledger's last step is stepped, oldest first (one transaction each,
  so the ledger says which days are done and a restarted loop catches up idempotently); an
  account that has not stepped yet starts with the latest due session. A catch-up step whose next
  open has passed records the decision; an Alpaca order not sent before that open's cutoff expires
  unsent (:mod:`market_metarl.live.alpaca`), so nothing fills a day late;
- then the loop sleeps until the step time of the next session (weekends and holidays skipped by
  the calendar). A bar not published yet (:class:`~market_metarl.live.feeds.StaleDataError`) is
  retried after :data:`STALE_RETRY` seconds; a broker that refuses orders now (the step says
  ``waiting``) is retried at the next step time.

Waiting goes through a :class:`Clock` (``now`` and an interruptible ``sleep``), so tests drive the
loop through weeks of sessions with a fake clock and no real sleeping. The ``stop`` event (SIGINT,
SIGTERM) ends the loop after the step in progress, or at once while it sleeps.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from market_metarl.live.alpaca_schema import broker_kind
from market_metarl.live.feeds import AlpacaFeed, StaleDataError, utc_now
from market_metarl.live.step import StepResult, step

if TYPE_CHECKING:
    from market_metarl.live.account import PaperSession

AFTER_CLOSE = pd.Timedelta(minutes=20)
"""How long after a session's close the live loop steps (data vendors publish the bar by then)."""

ALPACA_REOPEN = pd.Timedelta(hours=19, minutes=1)
"""Earliest step time of an Alpaca account, as a New York time of day (OPG orders reopen at
19:00 ET)."""

STALE_RETRY = 300.0
"""Seconds before the live loop retries when the day's bar is not published yet."""


class Clock(Protocol):
    """Now, and an interruptible sleep: what the live loop waits with."""

    def now(self) -> pd.Timestamp:
        """The current time, tz-aware (UTC)."""
        ...

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Wait ``seconds`` or until ``stop`` is set; True when ``stop`` is set."""
        ...


@dataclass(frozen=True)
class WallClock:
    """The real clock: ``now`` from ``read`` (default: the system's), sleeping on the event."""

    read: Callable[[], pd.Timestamp] = utc_now

    def now(self) -> pd.Timestamp:
        """The current time (UTC)."""
        return self.read()

    def sleep(self, seconds: float, stop: threading.Event) -> bool:
        """Wait on ``stop`` for ``seconds``."""
        return stop.wait(max(seconds, 0.0))


def step_time(session: PaperSession, day: pd.Timestamp) -> pd.Timestamp:
    """When the live loop steps session ``day`` (UTC; see the module docstring)."""
    at = session.feed.calendar.session_close(day) + AFTER_CLOSE
    if broker_kind(session.ledger.conn) == "alpaca":
        reopen = (pd.Timestamp(day).normalize() + ALPACA_REOPEN).tz_localize("America/New_York")
        at = max(at, reopen.tz_convert("UTC"))
    return at


def due_sessions(session: PaperSession, now: pd.Timestamp) -> list[dt.date]:
    """Sessions whose step time has come and that the ledger has not stepped, oldest first."""
    calendar = session.feed.calendar
    today = now.tz_convert("America/New_York").tz_localize(None).normalize()
    latest = today if calendar.is_session(today) else calendar.previous_session(today)
    if step_time(session, latest) > now:
        latest = calendar.previous_session(latest)
    last = session.ledger.last_step()
    if last is None:
        return [latest.date()]
    return [d.date() for d in calendar.sessions(pd.Timestamp(last) + pd.Timedelta(days=1), latest)]


def next_step_time(session: PaperSession, now: pd.Timestamp) -> pd.Timestamp:
    """The first step time after ``now``."""
    calendar = session.feed.calendar
    day = now.tz_convert("America/New_York").tz_localize(None).normalize()
    if not calendar.is_session(day) or step_time(session, day) <= now:
        day = calendar.next_session(day)
    return step_time(session, day)


def _share_clock(session: PaperSession, clock: Clock) -> None:
    """Alpaca feeds read the loop's clock: they drop the bars of sessions open at its now."""
    for feed in (session.feed, *session.feeds):
        if isinstance(feed, AlpacaFeed):
            feed.clock = clock.now


def run_live(
    session: PaperSession,
    clock: Clock,
    stop: threading.Event,
    on_step: Callable[[StepResult], None] | None = None,
    until: dt.date | None = None,
    every: float | None = None,
    once: bool = False,
) -> int:
    """Step each due session, then sleep until the next; returns the number of steps taken.

    Args:
        session: The open account (its feed must be live).
        clock: What to read the time from and sleep with.
        stop: Ends the loop (after the step in progress).
        on_step: Called with every step's result (``waiting`` ones too).
        until: Return once the ledger has stepped this day.
        every: Seconds between wakes instead of the calendar's (and between retries).
        once: Return after stepping the due sessions (for cron), without sleeping.
    """
    _share_clock(session, clock)
    taken = 0
    while not stop.is_set():
        now = clock.now()
        wait: float | None = None
        for day in due_sessions(session, now):
            if stop.is_set():
                return taken
            try:
                result = step(session, day, clock.now())
            except StaleDataError as exc:
                result, wait = StepResult(str(day), "waiting", str(exc)), STALE_RETRY
            taken += result.status == "stepped"
            if on_step is not None:
                on_step(result)
            if result.status == "waiting":  # stale data, or the broker refuses orders now
                break
        last = session.ledger.last_step()
        if once or stop.is_set() or (until is not None and last is not None and last >= until):
            break
        if every is not None:
            wait = every
        elif wait is None:
            wait = (next_step_time(session, clock.now()) - clock.now()).total_seconds()
        if clock.sleep(max(wait, 1e-3), stop):
            break
    return taken
