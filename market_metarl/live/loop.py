"""The long-running loop: step once per trading day, resume where it stopped, stop cleanly.

- With a replay feed it steps through successive as-of dates, from the session after the last step
  (or ``start`` for an account that has not stepped yet) to ``until`` (or the feed's end), then
  returns.
- With a live feed it runs :func:`~market_metarl.live.schedule.run_live`: every due session after
  the last step (the latest closed one for a new account), then a sleep until the next session's
  step time (or ``every`` seconds); stale data is retried.

SIGINT and SIGTERM set a stop flag: the step in progress finishes (it is one transaction, so the
alternative, dying, would roll it back), the loop returns and the caller closes the ledger and exits
0. A restart resumes from the ledger.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import pandas as pd

from market_metarl.live.account import PaperSession
from market_metarl.live.feeds import ReplayFeed, utc_now
from market_metarl.live.schedule import WallClock, run_live
from market_metarl.live.step import StepResult, step
from market_metarl.types import DataError


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """Set ``stop`` on SIGINT and SIGTERM while inside (main thread only), then restore handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def replay_dates(
    session: PaperSession, start: dt.date | None, until: dt.date | None
) -> list[dt.date]:
    """As-of dates a replay run steps: after the last step (or from ``start``) to ``until``."""
    index = session.feed.history().index
    last = session.ledger.last_step()
    if last is None and start is None:
        raise DataError(
            "the account has not stepped yet: give --start (its first as-of date) "
            "or run `paper step --asof DATE` first"
        )
    first = last + dt.timedelta(days=1) if last is not None else start
    assert first is not None
    lo = pd.Timestamp(first)
    hi = pd.Timestamp(until) if until is not None else index[-1]
    if until is not None and hi > index[-1]:
        raise DataError(
            f"--asof {until} is after the end of {session.feed.spec} ({index[-1].date()})"
        )
    return [d.date() for d in index[(index >= lo) & (index <= hi)]]


def run_loop(
    session: PaperSession,
    until: dt.date | None = None,
    start: dt.date | None = None,
    every: float | None = None,
    stop: threading.Event | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    now: Callable[[], pd.Timestamp] = utc_now,
) -> int:
    """Step the account until done (replay) or stopped; returns the number of steps taken."""
    stop = stop or threading.Event()
    if isinstance(session.feed, ReplayFeed):
        return _replay(session, until, start, every, stop, on_step)
    return run_live(session, WallClock(now), stop, on_step, until, every)


def _replay(
    session: PaperSession,
    until: dt.date | None,
    start: dt.date | None,
    every: float | None,
    stop: threading.Event,
    on_step: Callable[[StepResult], None] | None,
) -> int:
    taken = 0
    for i, day in enumerate(replay_dates(session, start, until)):
        if stop.is_set():
            break
        if i and every:
            if stop.wait(every):
                break
        result = step(session, day)
        taken += result.status == "stepped"
        if on_step is not None:
            on_step(result)
    return taken
