"""The ledger tables of an account whose broker is Alpaca (plain SQLite; alpaca-py not imported).

Every ledger has them since schema version 3 (new ledgers from
:data:`~market_metarl.live.schema.SCHEMA`; older ones through the version-3 migration,
:func:`alpaca_tables`); a ledger whose ``broker_account`` table has no row is a simulated (``sim``)
account:

- ``broker_account``: one row: the broker kind (``alpaca``), paper or live, the base URL given at
  ``paper init`` (``APCA_API_BASE_URL`` overrides it) and the Alpaca account number;
- ``alpaca_orders``: per ledger order, what was (or is to be) sent: the write-ahead intent (share
  quantity, the unrounded quantity and the reference price) written and committed BEFORE the POST,
  then Alpaca's order id and status, or why it was rejected or expired;
- ``reconciliations``: at the start of every step, the ledger's book against the broker's (shares
  and cash) and the difference as a fraction of equity.
"""

from __future__ import annotations

import sqlite3
from typing import Any

BROKER_KINDS = ("sim", "alpaca")
"""The brokers a paper account can trade through (``paper init --broker``)."""

ALPACA_TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS broker_account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        kind TEXT NOT NULL,
        paper INTEGER NOT NULL,
        base_url TEXT,
        account_number TEXT NOT NULL,
        created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alpaca_orders (
        client_id TEXT PRIMARY KEY REFERENCES orders (client_id),
        state TEXT NOT NULL CHECK (state IN ('intent', 'sent', 'rejected', 'expired', 'empty')),
        symbol TEXT NOT NULL,
        qty REAL NOT NULL,
        wanted_qty REAL NOT NULL,
        ref_price REAL NOT NULL,
        alpaca_id TEXT,
        status TEXT,
        detail TEXT,
        updated TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS reconciliations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        date TEXT NOT NULL,
        checked_at TEXT NOT NULL,
        ledger_shares TEXT NOT NULL,
        broker_shares TEXT NOT NULL,
        ledger_cash REAL NOT NULL,
        broker_cash REAL NOT NULL,
        difference REAL NOT NULL)""",
)
"""The tables' DDL: part of the ledger schema since version 3."""


def alpaca_tables(conn: sqlite3.Connection) -> None:
    """Create the broker tables on ``conn``: the version-3 ledger migration (idempotent)."""
    for statement in ALPACA_TABLES:
        conn.execute(statement)


def broker_kind(conn: sqlite3.Connection) -> str:
    """The broker of the ledger on ``conn``: ``alpaca`` when it has a broker row, else ``sim``."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'broker_account'"
    ).fetchone()
    if exists is None:
        return "sim"
    row = conn.execute("SELECT kind FROM broker_account WHERE id = 1").fetchone()
    return "sim" if row is None else str(row[0])


def broker_row(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The ``broker_account`` row as a dict (None for a simulated account)."""
    if broker_kind(conn) == "sim":
        return None
    cur = conn.execute("SELECT * FROM broker_account WHERE id = 1")
    return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))


def last_reconciliation(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The last reconciliation as a dict (None: none yet, or a simulated account)."""
    if broker_kind(conn) == "sim":
        return None
    cur = conn.execute("SELECT * FROM reconciliations ORDER BY id DESC LIMIT 1")
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))
