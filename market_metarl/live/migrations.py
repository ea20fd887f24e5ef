"""Schema migrations of the paper ledger: bring a ledger written by an older version up to date.

:data:`MIGRATIONS` is the ordered registry: one ``(to_version, description, apply)`` entry per
schema version after the first, where ``apply(conn)`` turns a ledger of version ``to_version - 1``
into one of ``to_version`` (plain SQL on the open connection; no ``BEGIN``/``COMMIT`` of its own).
To change the schema, edit :data:`~market_metarl.live.schema.SCHEMA`, append an entry here and
bump :data:`~market_metarl.live.schema.SCHEMA_VERSION` to its ``to_version``. An entry is frozen
history once released: it must never change, because ledgers out there were migrated by it.

:func:`migrate` applies the pending entries, each in one ``BEGIN IMMEDIATE ... COMMIT`` that also
sets ``PRAGMA user_version`` and ``meta.schema_version`` and records the step in
``schema_history``, so a crash leaves the ledger at the last version committed. Before the first,
a copy of the ledger is written to ``<db>.v<old>.bak`` (SQLite's backup API, taken under the write
lock, so no step can slip in between). Foreign keys are off while an entry runs (a table can be
rebuilt) and checked before it commits. :meth:`market_metarl.live.ledger.Ledger.open` migrates an
older ledger this way and refuses a newer one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from market_metarl.fileio import temporary_sibling
from market_metarl.live.alpaca_schema import alpaca_tables
from market_metarl.live.portfolio_schema import portfolio_tables
from market_metarl.live.schema import (
    SCHEMA_VERSION,
    connect,
    open_ledger_file,
    remove_with_journals,
    stored_version,
)
from market_metarl.types import RunError

__all__ = ["MIGRATIONS", "Migrated", "Migration", "migrate", "open_current", "pending"]

logger = logging.getLogger(__name__)

Migration = tuple[int, str, Callable[[sqlite3.Connection], None]]
"""A registry entry: ``(to_version, description, apply)``."""


def _v2_history_and_indexes(conn: sqlite3.Connection) -> None:
    """Version 2: the ``schema_history`` table (seeded with the ledger's creation) and indexes."""
    conn.execute(
        """CREATE TABLE schema_history (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at TEXT NOT NULL)"""
    )
    conn.execute(
        "INSERT INTO schema_history SELECT 1, 'ledger created', created FROM account WHERE id = 1"
    )
    conn.execute("CREATE INDEX orders_by_status ON orders (status, date, symbol)")
    conn.execute("CREATE INDEX fills_by_date ON fills (date, symbol)")


MIGRATIONS: tuple[Migration, ...] = (
    (
        2,
        "schema_history table; indexes of pending orders and of fills by date",
        _v2_history_and_indexes,
    ),
    (3, "broker tables: broker_account, alpaca_orders, reconciliations", alpaca_tables),
    (
        4,
        "multi-asset tables: account_symbols (the old account's symbol), step_symbols, "
        "shadow_positions",
        portfolio_tables,
    ),
)
"""Every migration, in version order (the last one's ``to_version`` is ``SCHEMA_VERSION``)."""


@dataclass(frozen=True)
class Migrated:
    """What :func:`migrate` did.

    Attributes:
        db: The ledger file.
        from_version: Its schema version before.
        to_version: Its schema version now.
        applied: ``(version, description)`` of each migration applied, in order.
        backup: The copy of the ledger taken before (None: nothing to do, or no backup asked).
    """

    db: Path
    from_version: int
    to_version: int
    applied: tuple[tuple[int, str], ...]
    backup: Path | None


def pending(version: int) -> list[Migration]:
    """The migrations that bring a ledger of schema ``version`` to :data:`SCHEMA_VERSION`.

    Raises:
        RunError: ``version`` is newer than this code reads (the message says to upgrade).
    """
    versions = [entry[0] for entry in MIGRATIONS]
    if versions != list(range(2, SCHEMA_VERSION + 1)):  # a broken registry is a bug, not input
        raise AssertionError(f"MIGRATIONS go to versions {versions}, not 2..{SCHEMA_VERSION}")
    if version > SCHEMA_VERSION:
        from market_metarl._version import __version__

        raise RunError(
            f"the ledger has schema version {version}, newer than this market_metarl "
            f"({__version__}) reads (version {SCHEMA_VERSION}); upgrade market_metarl "
            "(pip install -U market-metarl) to open it"
        )
    return [entry for entry in MIGRATIONS if entry[0] > version]


def migrate(path: str | Path, backup: bool = True, now: dt.datetime | None = None) -> Migrated:
    """Bring the ledger at ``path`` to :data:`SCHEMA_VERSION` (a no-op when it is there already).

    Args:
        path: The ledger file.
        backup: Copy the ledger to ``<path>.v<old>.bak`` first (``.v<old>.2.bak``... when taken).
        now: The time recorded in ``schema_history`` (default: now, UTC).

    Returns:
        What was done.

    Raises:
        RunError: No ledger at ``path``, a file that is not one, a ledger newer than this code,
            or a migration that failed (its transaction is rolled back: the ledger stays at the
            last version committed, and the message names the backup).
    """
    p = Path(path)
    conn, meta = open_ledger_file(p)
    try:
        old = stored_version(conn, meta, p)
        try:
            todo = pending(old)
        except RunError as exc:
            raise RunError(f"{p}: {exc}") from None
        stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        conn.execute("PRAGMA foreign_keys = OFF")  # outside a transaction, or it is ignored
        saved: Path | None = None
        applied: list[tuple[int, str]] = []
        for version, description, apply in todo:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = stored_version(conn, dict(conn.execute("SELECT * FROM meta")), p)
                if current >= version:  # another process migrated it meanwhile
                    conn.execute("ROLLBACK")
                    continue
                if backup and saved is None:
                    saved = _backup(p, current)
                _apply(conn, version, description, apply, stamp)
            except BaseException as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    where = f"; the copy taken before is {saved}" if saved else ""
                    raise RunError(
                        f"migrating ledger {p} to schema version {version} failed ({exc}); "
                        f"it was left at version {version - 1}{where}"
                    ) from None
                raise
            conn.execute("COMMIT")
            applied.append((version, description))
        return Migrated(p, old, SCHEMA_VERSION, tuple(applied), saved)
    finally:
        conn.close()


def open_current(p: Path) -> sqlite3.Connection:
    """A connection to the ledger at ``p``, migrated first (one log line) when it is older.

    Raises:
        RunError: As :func:`migrate`; a ledger newer than this code is refused untouched.
    """
    conn, meta = open_ledger_file(p)
    try:
        version = stored_version(conn, meta, p)
    except BaseException:
        conn.close()
        raise
    if version == SCHEMA_VERSION:
        return conn
    conn.close()
    done = migrate(p)
    if done.applied:
        logger.info(
            "migrated ledger %s from schema version %d to %d (copy of the old one: %s)",
            p,
            done.from_version,
            done.to_version,
            done.backup,
        )
    return open_ledger_file(p)[0]


def _apply(
    conn: sqlite3.Connection,
    version: int,
    description: str,
    apply: Callable[[sqlite3.Connection], None],
    stamp: str,
) -> None:
    """Run one migration inside the open transaction and record it."""
    apply(conn)
    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise sqlite3.IntegrityError(f"foreign keys broken in {sorted({r[0] for r in broken})}")
    conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.execute("INSERT INTO schema_history VALUES (?, ?, ?)", (version, description, stamp))


def _backup(p: Path, version: int) -> Path:
    """Copy the ledger at ``p`` (schema ``version``) beside it; returns the copy's path.

    Read through a second connection: the caller's holds the write lock, which readers pass.
    The copy is built under a temporary name and linked into place, never over another file.
    """
    n = 1
    while True:
        target = Path(f"{p}.v{version}.bak" if n == 1 else f"{p}.v{version}.{n}.bak")
        if not target.exists():
            break
        n += 1
    tmp = temporary_sibling(target)
    remove_with_journals(tmp)
    try:
        src, dst = connect(p, "ro"), sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        os.link(tmp, target)
    finally:
        remove_with_journals(tmp)
    return target
