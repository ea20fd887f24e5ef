"""The ledger tables of a multi-asset account (schema version 4), and reading and writing them.

Every ledger has them since schema version 4 (new ledgers from
:data:`~market_metarl.live.schema.SCHEMA`; older ones through the version-4 migration,
:func:`portfolio_tables`, which records the old account's one symbol):

- ``account_symbols``: the symbols the account trades, in order, each with its feed spec (one row
  for a one-symbol account; the ``account`` row's ``symbol`` and ``feed`` then hold the same
  values joined by commas);
- ``step_symbols``: per decision day and symbol of a multi-asset account, the capital split, the
  sleeve weights the adapted and pooled policies decided, the sleeve weight the account traded,
  the final account weight and its order (the ``steps`` row holds the account's totals);
- ``shadow_positions``: the shares and pending target of each symbol in each shadow book of a
  multi-asset account (the book's cash stays in ``shadow_books``).

Orders stay keyed by their client id, one per (account, day, symbol), and ``orders`` keeps its
``UNIQUE (date, symbol)``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

PORTFOLIO_TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS account_symbols (
        position INTEGER PRIMARY KEY CHECK (position >= 0),
        symbol TEXT NOT NULL UNIQUE,
        feed TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS step_symbols (
        date TEXT NOT NULL REFERENCES steps (date),
        symbol TEXT NOT NULL REFERENCES account_symbols (symbol),
        allocation REAL NOT NULL,
        adapted_target REAL NOT NULL,
        pooled_target REAL NOT NULL,
        shadow_target REAL NOT NULL,
        sleeve_target REAL NOT NULL,
        target REAL,
        client_id TEXT REFERENCES orders (client_id),
        PRIMARY KEY (date, symbol))""",
    """CREATE TABLE IF NOT EXISTS shadow_positions (
        book TEXT NOT NULL REFERENCES shadow_books (name),
        symbol TEXT NOT NULL REFERENCES account_symbols (symbol),
        shares REAL NOT NULL,
        pending REAL,
        PRIMARY KEY (book, symbol))""",
)
"""The tables' DDL: part of the ledger schema since version 4."""


def portfolio_tables(conn: sqlite3.Connection) -> None:
    """The version-4 migration: create the tables and record the account's one symbol."""
    for statement in PORTFOLIO_TABLES:
        conn.execute(statement)
    conn.execute(
        "INSERT OR IGNORE INTO account_symbols SELECT 0, symbol, feed FROM account WHERE id = 1"
    )


def join_specs(items: tuple[str, ...] | list[str]) -> str:
    """Symbols or feed specs as the ``account`` row stores them (comma-separated)."""
    return ",".join(items)


def split_specs(text: str) -> list[str]:
    """The items of a comma-separated list (``bundled:SPY,bundled:QQQ``), blanks dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def account_symbols(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """``(symbol, feed)`` of each symbol the account trades, in order."""
    rows = conn.execute("SELECT symbol, feed FROM account_symbols ORDER BY position")
    return [(str(s), str(f)) for s, f in rows]


def insert_account_symbols(conn: sqlite3.Connection, pairs: list[tuple[str, str]]) -> None:
    """Record the account's ``(symbol, feed)`` pairs (at creation); shadow rows when several."""
    conn.executemany(
        "INSERT INTO account_symbols VALUES (?, ?, ?)",
        [(i, s, f) for i, (s, f) in enumerate(pairs)],
    )
    if len(pairs) > 1:
        conn.execute(
            "INSERT INTO shadow_positions SELECT b.name, s.symbol, 0.0, NULL "
            "FROM shadow_books b CROSS JOIN account_symbols s"
        )


@dataclass(frozen=True)
class SymbolDecision:
    """A ``step_symbols`` row: one symbol's decision on one day (sleeve weights of ``s``).

    Attributes:
        symbol: The symbol.
        allocation: Its capital split ``a`` that day.
        adapted_target: The adapted policy's sleeve weight.
        pooled_target: The pooled policy's sleeve weight from the account's sleeve.
        shadow_target: The pooled policy's sleeve weight from its shadow book's sleeve.
        sleeve_target: The sleeve weight traded (``target / allocation``; the adapted or pooled
            target itself when no guardrail changed it).
        target: The final account weight (None: halted, no order).
        client_id: Its order's client id (None: no order).
    """

    symbol: str
    allocation: float
    adapted_target: float
    pooled_target: float
    shadow_target: float
    sleeve_target: float
    target: float | None
    client_id: str | None


def insert_decisions(conn: sqlite3.Connection, day: str, rows: list[SymbolDecision]) -> None:
    """Record a day's per-symbol decisions (after its ``steps`` row)."""
    conn.executemany(
        "INSERT INTO step_symbols VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                day,
                r.symbol,
                r.allocation,
                r.adapted_target,
                r.pooled_target,
                r.shadow_target,
                r.sleeve_target,
                r.target,
                r.client_id,
            )
            for r in rows
        ],
    )


def sleeve_targets(conn: sqlite3.Connection, day: str, column: str) -> dict[str, float]:
    """``sleeve_target`` or ``shadow_target`` of each symbol on ``day`` (empty: no step)."""
    if column not in ("sleeve_target", "shadow_target"):
        raise ValueError(f"not a sleeve column: {column}")
    rows = conn.execute(f"SELECT symbol, {column} FROM step_symbols WHERE date = ?", (day,))
    return {str(s): float(v) for s, v in rows}


def decisions(conn: sqlite3.Connection, day: str) -> list[dict[str, object]]:
    """The per-symbol decisions of ``day`` as dicts (for the status)."""
    cur = conn.execute(
        "SELECT d.* FROM step_symbols d JOIN account_symbols s ON s.symbol = d.symbol "
        "WHERE d.date = ? ORDER BY s.position",
        (day,),
    )
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


def shadow_positions(conn: sqlite3.Connection, book: str) -> dict[str, tuple[float, float | None]]:
    """``symbol -> (shares, pending target)`` of a shadow book of a multi-asset account."""
    rows = conn.execute(
        "SELECT symbol, shares, pending FROM shadow_positions WHERE book = ?", (book,)
    )
    return {str(s): (float(q), None if p is None else float(p)) for s, q, p in rows}


def set_shadow_positions(
    conn: sqlite3.Connection, book: str, rows: dict[str, tuple[float, float | None]]
) -> None:
    """Store ``symbol -> (shares, pending)`` of a shadow book."""
    conn.executemany(
        "UPDATE shadow_positions SET shares = ?, pending = ? WHERE book = ? AND symbol = ?",
        [(q, p, book, s) for s, (q, p) in rows.items()],
    )
