"""Paper trading's entry points: one plain, typed call per ``market-metarl paper`` command.

:func:`init_account`, :func:`step_account`, :func:`run_account`, :func:`account_status` and
:func:`reset_account` take explicit keyword arguments and return values (nothing is printed here);
the command line (:mod:`market_metarl.cli.paper`) translates its options into these calls and
prints what they return, and a notebook or a scheduler can call them directly.

User-fixable problems raise :class:`~market_metarl.types.MarketMetaRLError`. Nothing is written on
bad input: ``init_account`` validates before it creates the ledger, and a step validates before
its one transaction. The trading calls import torch; ``account_status`` and ``reset_account`` do
not, so they answer fast.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_metarl.live.account import BrokerChoice, init_account
from market_metarl.live.ledger import Ledger
from market_metarl.live.status import ledger_status
from market_metarl.types import ConfigError

if TYPE_CHECKING:  # the trading calls import torch; `paper status` does not wait for it
    from market_metarl.live.schedule import Clock
    from market_metarl.live.step import StepResult

__all__ = [
    "BrokerChoice",
    "RunStart",
    "RunSummary",
    "account_status",
    "init_account",
    "reset_account",
    "run_account",
    "step_account",
]


@dataclass(frozen=True)
class RunStart:
    """Where a :func:`run_account` loop starts.

    Attributes:
        db: The ledger file.
        symbol: The symbol the account trades.
        feed: The feed's spec (``bundled:SPY``, ``yfinance:SPY``...).
        last_step: The last as-of day stepped before this run (None: not stepped yet).
    """

    db: Path
    symbol: str
    feed: str
    last_step: dt.date | None


@dataclass(frozen=True)
class RunSummary:
    """How a :func:`run_account` loop ended.

    Attributes:
        stopped: True when the ``stop`` event (a signal) ended it, False when it was done.
        steps: Steps taken (no-ops not counted).
        last_step: The last as-of day stepped (None: none yet).
    """

    stopped: bool
    steps: int
    last_step: dt.date | None


def step_account(
    db: str | Path,
    *,
    asof: dt.date | None = None,
    run_path: str | Path | None = None,
    feed_spec: str | None = None,
) -> StepResult:
    """The daily step of the account in ``db`` for ``asof`` (default: the feed's next day).

    Args:
        db: The ledger file.
        asof: The as-of trading day; a day already stepped is a no-op.
        run_path: The trained run (default: the account's; another path must be the same run).
        feed_spec: The feed (default: the account's; it must trade the account's symbol).

    Raises:
        RunError: No ledger, or the ledger belongs to another run.
        DataError: Bad as-of date or data (nothing is written).
    """
    from market_metarl.live.account import PaperSession
    from market_metarl.live.step import step

    with PaperSession.open(db, run_path, feed_spec) as session:
        return step(session, asof)


def run_account(
    db: str | Path,
    *,
    run_path: str | Path | None = None,
    feed_spec: str | None = None,
    until: dt.date | None = None,
    start: dt.date | None = None,
    every: float | None = None,
    stop: threading.Event | None = None,
    on_start: Callable[[RunStart], None] | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    live: bool = False,
    clock: Clock | None = None,
    once: bool = False,
) -> RunSummary:
    """Step the account once per trading day until done (replay) or ``stop`` is set.

    Args:
        db: The ledger file.
        run_path: The trained run (default: the account's).
        feed_spec: The feed (default: the account's).
        until: The last as-of day (replay default: the feed's end; live: forever).
        start: The first as-of day of an account that has not stepped yet.
        every: Seconds between steps (default: replay at once, live after each session's close).
        stop: Set it (e.g. from a signal handler) to end the loop after the step in progress.
        on_start: Called once the account is open, before the first step.
        on_step: Called with every step's result.
        live: Require a live feed and run the scheduled loop.
        once: With ``live``: step the due sessions, then return (for cron).
        clock: What the live loop reads the time from and sleeps with (default: the system's).

    Raises:
        ConfigError: ``every`` is negative; ``live`` with a replayed feed or with ``start``.
        RunError: No ledger, or the ledger belongs to another run.
        DataError: Bad dates or data (the steps taken until then are kept).
    """
    from market_metarl.live.account import PaperSession
    from market_metarl.live.loop import run_loop
    from market_metarl.live.schedule import WallClock, run_live

    _check_run(every, live, start, once)
    stop = stop or threading.Event()
    with PaperSession.open(db, run_path, feed_spec) as session:
        replayed = [f.spec for f in (session.feed, *session.feeds) if not f.live]
        if live and replayed:
            raise ConfigError(_NOT_LIVE.format(spec=replayed[0]))
        if on_start is not None:
            spec = ",".join(f.spec for f in session.feeds) or session.feed.spec
            start_at = RunStart(Path(db), session.account.symbol, spec, session.ledger.last_step())
            on_start(start_at)
        if live:
            taken = run_live(session, clock or WallClock(), stop, on_step, until, every, once)
        else:
            taken = run_loop(
                session, until=until, start=start, every=every, stop=stop, on_step=on_step
            )
        return RunSummary(stop.is_set(), taken, session.ledger.last_step())


_NOT_LIVE = (
    "--live needs a live feed (yfinance:SYMBOL or alpaca:SYMBOL) but {spec} is replayed; "
    "drop --live to replay it, or give --feed"
)


def _check_run(every: float | None, live: bool, start: dt.date | None, once: bool) -> None:
    """Refuse a negative ``every``, ``start`` with ``live``, ``once`` without it."""
    if once and not live:
        raise ConfigError("--once goes with --live (step the due sessions, then exit)")
    if every is not None and every < 0:
        raise ConfigError(f"--every must be >= 0 seconds, got {every}")
    if live and start is not None:
        raise ConfigError(
            "--start does not apply to --live: a new account starts with the "
            "latest closed session; drop --start"
        )


def account_status(db: str | Path) -> dict[str, Any]:
    """The state of the account in ``db``, from its ledger alone (see :func:`ledger_status`)."""
    with Ledger.open(db) as ledger:
        return ledger_status(ledger)


def reset_account(db: str | Path) -> tuple[bool, bool]:
    """Clear the kill switch and the fallback to the pooled policy of the account in ``db``.

    One transaction, recorded as a ``reset`` event.

    Returns:
        The ``(killed, fallback)`` flags before the reset.
    """
    with Ledger.open(db) as ledger, ledger.transaction():
        killed, fallback = ledger.guard_state()
        day = (ledger.last_step() or dt.date.today()).isoformat()
        ledger.insert_event(day, "reset", {"killed": killed, "fallback": fallback})
        ledger.set_guard_state(False, False, day)
    return killed, fallback
