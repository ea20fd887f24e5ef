"""The ledger's SQLite schema.

The tables (their columns are in :data:`SCHEMA`):

- ``meta``: schema version and kind of file (the version is also ``PRAGMA user_version``);
- ``account``: one row: account id, run (path, digest of its config and checkpoints, algo, seed),
  symbol, feed, initial cash, rolling settings (K, R), guardrail settings, origin (first step
  date), creation time;
- ``steps``: one row per decision day: adaptation day of its block, the policy that traded, the
  adapted and pooled targets, the final target and its order;
- ``orders``, ``fills``: target-weight orders by client id, and their fills (shares, price, cost);
- ``positions``, ``cash``: the account's book now;
- ``equity``, ``marks``: the book marked at every session's close since the origin, with the shadow
  books' equity (pooled policy, buy-and-hold);
- ``shadow_books``: the shadow books (cash, shares, pending target);
- ``adaptations``: per rolling block, the support dates and a hash of the adapted state;
- ``guardrail_events``, ``guard_state``: every guardrail event, and the kill/fallback flags;
- ``schema_history``: when the ledger was created and each schema migration applied to it;
- ``broker_account``, ``alpaca_orders``, ``reconciliations``: an account on a real broker
  (:mod:`market_metarl.live.alpaca_schema`; no ``broker_account`` row: the simulated broker);
- ``account_symbols``, ``step_symbols``, ``shadow_positions``: the symbols of the account, and a
  multi-asset account's per-symbol decisions and shadow positions
  (:mod:`market_metarl.live.portfolio_schema`).

The file's schema version is ``PRAGMA user_version`` (also written to ``meta.schema_version``, which
is where version 1 kept it). To change the schema: edit :data:`SCHEMA` (what a new ledger gets),
append the migration that brings the previous version to the new one to
:data:`market_metarl.live.migrations.MIGRATIONS`, and bump :data:`SCHEMA_VERSION`. An older ledger
is migrated when opened; a newer one is refused. The rows read back as records: :class:`Account`,
:class:`Book` (a shadow book) and :class:`EquityRow` (a close mark).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from market_metarl.live.alpaca_schema import ALPACA_TABLES
from market_metarl.live.portfolio_schema import PORTFOLIO_TABLES
from market_metarl.types import RunError

SCHEMA_VERSION = 4
LEDGER_KIND = "market_metarl.paper-ledger"

SCHEMA: tuple[str, ...] = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        account_id TEXT NOT NULL,
        run_path TEXT NOT NULL,
        run_digest TEXT NOT NULL,
        config_digest TEXT NOT NULL,
        algo TEXT NOT NULL,
        seed INTEGER NOT NULL,
        symbol TEXT NOT NULL,
        feed TEXT NOT NULL,
        initial_cash REAL NOT NULL CHECK (initial_cash > 0),
        adapt_days INTEGER NOT NULL CHECK (adapt_days >= 2),
        every INTEGER NOT NULL CHECK (every >= 1),
        settings TEXT NOT NULL,
        origin TEXT,
        created TEXT NOT NULL)""",
    """CREATE TABLE orders (
        client_id TEXT PRIMARY KEY,
        date TEXT NOT NULL,
        symbol TEXT NOT NULL,
        target_weight REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('submitted', 'filled', 'cancelled')),
        UNIQUE (date, symbol))""",
    """CREATE TABLE fills (
        client_id TEXT PRIMARY KEY REFERENCES orders (client_id),
        date TEXT NOT NULL,
        symbol TEXT NOT NULL,
        shares REAL NOT NULL,
        price REAL NOT NULL,
        notional REAL NOT NULL,
        cost REAL NOT NULL)""",
    """CREATE TABLE steps (
        date TEXT PRIMARY KEY,
        adaptation_date TEXT NOT NULL,
        policy TEXT NOT NULL,
        adapted_target REAL NOT NULL,
        pooled_target REAL,
        target REAL,
        client_id TEXT REFERENCES orders (client_id),
        recorded_at TEXT NOT NULL)""",
    "CREATE TABLE positions (symbol TEXT PRIMARY KEY, shares REAL NOT NULL, updated TEXT NOT NULL)",
    """CREATE TABLE cash (
        id INTEGER PRIMARY KEY CHECK (id = 1), amount REAL NOT NULL, updated TEXT NOT NULL)""",
    """CREATE TABLE equity (
        date TEXT PRIMARY KEY,
        cash REAL NOT NULL,
        positions_value REAL NOT NULL,
        equity REAL NOT NULL,
        pooled_equity REAL,
        benchmark_equity REAL,
        stepped INTEGER NOT NULL)""",
    """CREATE TABLE marks (
        date TEXT NOT NULL REFERENCES equity (date),
        symbol TEXT NOT NULL,
        shares REAL NOT NULL,
        price REAL NOT NULL,
        weight REAL NOT NULL,
        PRIMARY KEY (date, symbol))""",
    """CREATE TABLE shadow_books (
        name TEXT PRIMARY KEY,
        cash REAL NOT NULL,
        shares REAL NOT NULL,
        pending REAL,
        pending_date TEXT,
        updated TEXT)""",
    """CREATE TABLE adaptations (
        date TEXT PRIMARY KEY,
        support_start TEXT NOT NULL,
        support_end TEXT NOT NULL,
        adapt_days INTEGER NOT NULL,
        params_hash TEXT NOT NULL)""",
    """CREATE TABLE guardrail_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        date TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    """CREATE TABLE guard_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        killed INTEGER NOT NULL,
        fallback INTEGER NOT NULL,
        updated TEXT)""",
    """CREATE TABLE schema_history (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at TEXT NOT NULL)""",
    "CREATE INDEX orders_by_status ON orders (status, date, symbol)",
    "CREATE INDEX fills_by_date ON fills (date, symbol)",
    *ALPACA_TABLES,
    *PORTFOLIO_TABLES,
)
TABLES: tuple[str, ...] = (
    "meta",
    "account",
    "orders",
    "fills",
    "steps",
    "positions",
    "cash",
    "equity",
    "marks",
    "shadow_books",
    "adaptations",
    "guardrail_events",
    "guard_state",
    "schema_history",
    "broker_account",
    "alpaca_orders",
    "reconciliations",
    "account_symbols",
    "step_symbols",
    "shadow_positions",
)
SHADOW_BOOKS: tuple[str, ...] = ("pooled", "buy_and_hold")


@dataclass(frozen=True)
class Account:
    """The ``account`` row: what the ledger trades, with which run and settings."""

    account_id: str
    run_path: str
    run_digest: str
    config_digest: str
    algo: str
    seed: int
    symbol: str
    feed: str
    initial_cash: float
    adapt_days: int
    every: int
    settings: str
    origin: str | None
    created: str


@dataclass(frozen=True)
class Book:
    """Cash and shares of a shadow book, and the target it will trade at the next open."""

    name: str
    cash: float
    shares: float
    pending: float | None
    pending_date: str | None


@dataclass(frozen=True)
class EquityRow:
    """The account marked at one session's close."""

    date: str
    cash: float
    positions_value: float
    equity: float
    pooled_equity: float | None
    benchmark_equity: float | None
    stepped: int


def connect(path: Path, mode: str) -> sqlite3.Connection:
    """A connection to the ledger file ``path`` (SQLite URI ``mode``), closed if setting it fails."""
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def remove_with_journals(path: Path) -> None:
    """Remove the database file ``path`` and its journals."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def open_ledger_file(p: Path) -> tuple[sqlite3.Connection, dict[str, str]]:
    """Connect to the paper ledger at ``p`` and read its ``meta`` table (any schema version).

    Raises:
        RunError: No file at ``p``, a damaged file, or a database that is not a paper ledger.
    """
    if not p.is_file():
        raise RunError(f"no ledger at {p}; create one with `market-metarl paper init`")
    conn, rows = open_meta(p)
    if rows.get("kind") != LEDGER_KIND:
        conn.close()
        raise RunError(f"{p} is not a market_metarl paper ledger")
    return conn, rows


def stored_version(conn: sqlite3.Connection, meta: dict[str, str], p: Path) -> int:
    """The schema version of the ledger open on ``conn`` (``meta``: its ``meta`` table).

    ``PRAGMA user_version``; a ledger written before it was set (version 1) has 0 there and its
    version in ``meta.schema_version``.

    Raises:
        RunError: Neither holds a version.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    text = meta.get("schema_version", "")
    if not text.isdigit() or int(text) < 1:
        raise RunError(f"{p} has no ledger schema version (meta says {text!r}); it is corrupt")
    return int(text)


def open_meta(p: Path) -> tuple[sqlite3.Connection, dict[str, str]]:
    """Connect to an existing ledger file and read its ``meta`` table.

    Raises:
        RunError: The file is damaged (truncated, garbage): it is left untouched, without the
            ``-wal``/``-shm`` files opening it made, and the message names a backup path.
    """
    new = [Path(f"{p}{s}") for s in ("-wal", "-shm") if not Path(f"{p}{s}").exists()]
    conn = None
    try:
        conn = connect(p, "rw")
        return conn, dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        for path in new:  # leave the folder as it was found
            path.unlink(missing_ok=True)
        raise RunError(
            f"{p} is not a paper ledger ({exc}); it was left untouched: keep a copy "
            f"(cp {p} {p}.bak) and restore the ledger from your last backup"
        ) from None
