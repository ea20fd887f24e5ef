"""A paper account from Python: :class:`PaperAccount`, over :mod:`market_metarl.live.api`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_metarl.types import ConfigError

if TYPE_CHECKING:  # the trading calls import torch; they do it when called
    from market_metarl.live.api import RunSummary
    from market_metarl.live.step import StepResult
    from market_metarl.meta.run import TrainedRun

Date = dt.date | str
"""A date: a :class:`datetime.date` (or ``pandas.Timestamp``) or ISO text ``YYYY-MM-DD``."""


@dataclass(frozen=True)
class PaperAccount:
    """A paper account: its SQLite ledger, stepped once per trading day.

    Each call opens the ledger, does its work in one transaction and closes it, so an account is
    safe to step from a scheduler, a notebook or the command line (``market-metarl paper``) in
    turn.

    Attributes:
        db: The ledger file.
    """

    db: Path

    @classmethod
    def init(
        cls,
        db: str | Path,
        run: TrainedRun | str | Path,
        feed: str | Sequence[str],
        *,
        cash: float | None = None,
        adapt_days: int | None = None,
        every: int | None = None,
        settings: dict[str, Any] | None = None,
        allocation: str | None = None,
    ) -> PaperAccount:
        """Create the ledger of a new account trading ``feed`` with the run's adapted policy.

        The ledger records the run's directory, and every step reads it: a run trained without
        ``out`` (a temporary directory) serves only while its object lives.

        Args:
            db: The ledger file to create (it must not exist; its folder must).
            run: The trained run or its directory.
            feed: The bars' source: ``yfinance:SPY`` live, or ``bundled:SPY``/``csv:FILE``
                replayed one day at a time; several (a list, or one string with commas) make a
                multi-asset account: each symbol adapted on its own, one book.
            cash: Initial cash (default: ``[paper] cash``).
            adapt_days: K (default: ``[paper] adapt_days``, else the run's).
            every: R, days between adaptations (default: ``[paper] every``, else 20).
            settings: Other ``[paper]`` keys (guardrails...) over the run's.
            allocation: A multi-asset account's capital split: ``equal`` or ``inverse_vol``
                (default: ``[paper] allocation``).

        Raises:
            RunError: Unknown or unfinished run, or the ledger exists already.
            ConfigError: Invalid settings.
            DataError: The feed cannot be read.
        """
        from market_metarl.live.api import init_account
        from market_metarl.meta.run import TrainedRun

        path = run.path if isinstance(run, TrainedRun) else Path(run)
        init_account(
            db,
            path,
            feed,
            cash=cash,
            adapt_days=adapt_days,
            every=every,
            settings=settings,
            allocation=allocation,
        )
        return cls(Path(db))

    @classmethod
    def open(cls, db: str | Path) -> PaperAccount:
        """The existing account whose ledger is ``db``.

        Raises:
            RunError: ``db`` is not a ledger.
        """
        from market_metarl.live.ledger import Ledger

        Ledger.open(db).close()
        return cls(Path(db))

    def step(self, asof: Date | None = None) -> StepResult:
        """The daily step for ``asof`` (default: the feed's next day); a day done is a no-op.

        Raises:
            ConfigError: ``asof`` is not a date.
            DataError: Bad as-of date or data (nothing is written).
            RunError: The run is gone or is another one than the ledger's.
        """
        from market_metarl.live.api import step_account

        return step_account(self.db, asof=parse_day(asof, "asof"))

    def run(self, until: Date | None = None, start: Date | None = None) -> RunSummary:
        """Step once per trading day through ``until`` (replay feeds: default their end).

        Args:
            until: The last as-of day.
            start: The first as-of day of an account that has not stepped yet.

        Raises:
            DataError: Bad dates or data (the steps taken until then are kept).
        """
        from market_metarl.live.api import run_account

        return run_account(
            self.db, until=parse_day(until, "until"), start=parse_day(start, "start")
        )

    def status(self) -> dict[str, Any]:
        """The account's state from its ledger: equity, cash, positions, last step, guardrails."""
        from market_metarl.live.api import account_status

        return account_status(self.db)

    def describe(self) -> str:
        """:meth:`status` as the text ``market-metarl paper status`` prints."""
        from market_metarl.live.status import format_status

        return format_status(self.status())

    def reset(self) -> tuple[bool, bool]:
        """Clear the kill switch and the pooled fallback; the ``(killed, fallback)`` flags before."""
        from market_metarl.live.api import reset_account

        return reset_account(self.db)


def parse_day(when: Date | None, what: str) -> dt.date | None:
    """The date argument ``what`` as a date (None stays None).

    Raises:
        ConfigError: Text that is not an ISO date ``YYYY-MM-DD``.
    """
    if when is None or isinstance(when, dt.date):
        return when.date() if isinstance(when, dt.datetime) else when
    try:
        return dt.date.fromisoformat(when)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a date like 2020-01-31, got {when!r}") from None
