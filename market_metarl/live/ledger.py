"""The durable ledger of a paper account: one SQLite file (stdlib ``sqlite3``).

Durability: WAL journal, ``PRAGMA synchronous=FULL`` (a commit is on disk before it returns),
foreign keys on. Atomicity: every daily step writes inside ONE ``BEGIN IMMEDIATE ... COMMIT``
(:meth:`Ledger.transaction`), so a crash at any moment leaves either the whole step or nothing, and
SQLite rolls an interrupted transaction back the next time the file is opened. Idempotency: a
step's date is the primary key of ``steps`` and an order's deterministic client id (one per
account, date and symbol) the primary key of ``orders``, so a step re-run for a date already done
is a no-op and nothing trades twice.

What each table holds, and the schema version: :mod:`market_metarl.live.schema`. A ledger of an
older schema version is migrated when opened (:mod:`market_metarl.live.migrations`, after a copy
to ``<db>.v<old>.bak``; one log line); a newer one is refused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from market_metarl.fileio import temporary_sibling
from market_metarl.live.migrations import open_current
from market_metarl.live.portfolio_schema import insert_account_symbols, split_specs
from market_metarl.live.schema import (
    LEDGER_KIND,
    SCHEMA,
    SCHEMA_VERSION,
    SHADOW_BOOKS,
    TABLES,
    Account,
    Book,
    EquityRow,
    connect,
    remove_with_journals,
)
from market_metarl.types import DataError, RunError

__all__ = ["SCHEMA_VERSION", "SHADOW_BOOKS", "Account", "Book", "EquityRow", "Ledger"]


class Ledger:
    """A paper account's ledger, open on one SQLite connection (use as a context manager)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        """Wrap an open connection to the ledger at ``path``."""
        self.conn, self.path = conn, path
        self._depth = 0

    # opening

    @classmethod
    def create(
        cls,
        path: str | Path,
        account: Account,
        setup: Callable[[sqlite3.Connection], None] | None = None,
    ) -> Ledger:
        """Create the file with its schema and account row (one transaction).

        ``setup`` writes more in that transaction (a broker's tables and row).

        Raises:
            RunError: ``path`` exists already, or its folder does not.
        """
        p = Path(path)
        if p.exists():
            raise RunError(f"ledger {p} exists already; step it, or choose a new --db")
        if not p.parent.is_dir():
            raise RunError(f"folder {p.parent} of --db does not exist; create it first")
        tmp = temporary_sibling(p)  # built aside, linked into place whole: a kill leaves no half
        remove_with_journals(tmp)
        conn = connect(tmp, "rwc")
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            ledger = cls(conn, p)
            with ledger.transaction():
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("kind", LEDGER_KIND)],
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute(
                    "INSERT INTO schema_history VALUES (?, 'ledger created', ?)",
                    (SCHEMA_VERSION, account.created),
                )
                row = asdict(account)
                conn.execute(
                    f"INSERT INTO account (id, {', '.join(row)}) "
                    f"VALUES (1, {', '.join('?' * len(row))})",
                    tuple(row.values()),
                )
                _seed_books(conn, account)
                if setup is not None:
                    setup(conn)
            conn.close()
            os.link(tmp, p)  # never replaces a ledger created meanwhile
        except FileExistsError:
            raise RunError(f"ledger {p} exists already; step it, or choose a new --db") from None
        finally:
            conn.close()
            remove_with_journals(tmp)
        return cls.open(p)

    @classmethod
    def open(cls, path: str | Path) -> Ledger:
        """Open an existing ledger, migrating it first when its schema version is older.

        Raises:
            RunError: No ledger at ``path``, a foreign or damaged file, or a ledger of a newer
                schema version than this code reads.
        """
        return cls(open_current(Path(path)), Path(path))

    def schema_history(self) -> list[tuple[int, str, str]]:
        """``(version, description, applied_at)`` of the ledger's creation and each migration."""
        rows = self.conn.execute("SELECT * FROM schema_history ORDER BY version")
        return [(int(v), str(d), str(t)) for v, d, t in rows]

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Ledger:
        """The ledger itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the connection."""
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception (nesting joins)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    # reading

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        row = self.conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def account(self) -> Account:
        """The account row."""
        cur = self.conn.execute("SELECT * FROM account WHERE id = 1")
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        if row is None:
            raise RunError(f"ledger {self.path} has no account row; it is corrupt")
        values = dict(zip(names, row, strict=True))
        values.pop("id")
        return Account(**values)

    def last_step(self) -> dt.date | None:
        """The last as-of day stepped (None: not stepped yet)."""
        value = self._one("SELECT MAX(date) FROM steps")
        return None if value is None else dt.date.fromisoformat(value)

    def cash(self) -> float:
        """Cash held now."""
        return float(self._one("SELECT amount FROM cash WHERE id = 1"))

    def positions(self) -> dict[str, float]:
        """Shares held now, by symbol."""
        rows = self.conn.execute("SELECT symbol, shares FROM positions ORDER BY symbol")
        return {str(s): float(q) for s, q in rows}

    def pending_orders(self) -> list[tuple[str, str, str, float]]:
        """Submitted, unfilled orders: ``(client_id, date, symbol, target_weight)``."""
        rows = self.conn.execute(
            "SELECT client_id, date, symbol, target_weight FROM orders "
            "WHERE status = 'submitted' ORDER BY date, symbol"
        )
        return [(str(c), str(d), str(s), float(w)) for c, d, s, w in rows]

    def order(self, client_id: str) -> tuple[str, str, float, str] | None:
        """``(date, symbol, target_weight, status)`` of an order, or None."""
        row = self.conn.execute(
            "SELECT date, symbol, target_weight, status FROM orders WHERE client_id = ?",
            (client_id,),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), float(row[2]), str(row[3]))

    def fills(self, since: str | None = None) -> list[dict[str, Any]]:
        """Fills dated ``since`` or later, as column -> value dicts."""
        cur = self.conn.execute(
            "SELECT * FROM fills WHERE date >= ? ORDER BY date, symbol", (since or "",)
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def equity_rows(self, limit: int | None = None) -> list[EquityRow]:
        """Equity marks, oldest first (the last ``limit`` when given)."""
        sql = "SELECT * FROM equity ORDER BY date DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = [EquityRow(*r) for r in self.conn.execute(sql)]
        return rows[::-1]

    def equity_on(self, day: str) -> EquityRow | None:
        """The close mark of ``day``, or None."""
        row = self.conn.execute("SELECT * FROM equity WHERE date = ?", (day,)).fetchone()
        return None if row is None else EquityRow(*row)

    def peak_equity(self) -> float:
        """The highest equity marked (0 when none)."""
        value = self._one("SELECT MAX(equity) FROM equity")
        return float(value) if value is not None else 0.0

    def weight_on(self, day: str, symbol: str) -> float | None:
        """The weight of ``symbol`` at the close of ``day``, or None."""
        value = self._one("SELECT weight FROM marks WHERE date = ? AND symbol = ?", (day, symbol))
        return None if value is None else float(value)

    def book(self, name: str) -> Book:
        """The shadow book ``name`` (``pooled`` or ``buy_and_hold``)."""
        row = self.conn.execute(
            "SELECT name, cash, shares, pending, pending_date FROM shadow_books WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            raise RunError(f"ledger {self.path} has no shadow book {name!r}; it is corrupt")
        return Book(*row)

    def guard_state(self) -> tuple[bool, bool]:
        """The ``(killed, fallback)`` flags."""
        row = self.conn.execute("SELECT killed, fallback FROM guard_state WHERE id = 1").fetchone()
        return bool(row[0]), bool(row[1])

    def events(self, limit: int = 10) -> list[tuple[str, str, str]]:
        """The last ``limit`` guardrail events ``(date, kind, detail)``, oldest first."""
        rows = self.conn.execute(
            "SELECT date, kind, detail FROM guardrail_events ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(str(d), str(k), str(t)) for d, k, t in rows][::-1]

    def last_adaptation(self) -> dict[str, Any] | None:
        """The last adaptation row as a dict, or None."""
        cur = self.conn.execute("SELECT * FROM adaptations ORDER BY date DESC LIMIT 1")
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    def step_row(self, day: str) -> dict[str, Any] | None:
        """The step of ``day`` as a dict, or None."""
        cur = self.conn.execute("SELECT * FROM steps WHERE date = ?", (day,))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    def dump(self, skip_columns: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows (sorted), without ``skip_columns``: for comparing two ledgers."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in TABLES:
            cur = self.conn.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cur.description]
            keep = [i for i, n in enumerate(names) if n not in skip_columns]
            out[table] = sorted((tuple(r[i] for i in keep) for r in cur), key=repr)
        return out

    # writing (call inside `transaction()`)

    def set_origin(self, day: str) -> None:
        """Set the account's first as-of day (once)."""
        self.conn.execute("UPDATE account SET origin = ? WHERE id = 1 AND origin IS NULL", (day,))

    def insert_order(self, client_id: str, day: str, symbol: str, weight: float) -> bool:
        """Insert a submitted order; False (and nothing written) when the client id exists."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, 'submitted')",
            (client_id, day, symbol, weight),
        )
        return cur.rowcount == 1

    def record_fill(
        self, client_id: str, day: str, symbol: str, shares: float, price: float, cost: float
    ) -> None:
        """A fill of a submitted order: the fill row and the order's status, together."""
        self.conn.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?)",
            (client_id, day, symbol, shares, price, abs(shares) * price, cost),
        )
        cur = self.conn.execute(
            "UPDATE orders SET status = 'filled' WHERE client_id = ? AND status = 'submitted'",
            (client_id,),
        )
        if cur.rowcount != 1:
            raise DataError(f"order {client_id} is not pending; it cannot be filled twice")

    def cancel_order(self, client_id: str) -> None:
        """Mark a submitted order cancelled (the broker refused, expired or cancelled it)."""
        self.conn.execute(
            "UPDATE orders SET status = 'cancelled' WHERE client_id = ? AND status = 'submitted'",
            (client_id,),
        )

    def set_book(self, cash: float, positions: dict[str, float], day: str) -> None:
        """Set the cash and the positions after a fill on ``day``."""
        self.conn.execute("UPDATE cash SET amount = ?, updated = ? WHERE id = 1", (cash, day))
        for symbol, shares in positions.items():
            self.conn.execute(
                "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (symbol) "
                "DO UPDATE SET shares = excluded.shares, updated = excluded.updated",
                (symbol, shares, day),
            )

    def set_shadow(self, book: Book, day: str) -> None:
        """Store a shadow book as of ``day``."""
        self.conn.execute(
            "UPDATE shadow_books SET cash = ?, shares = ?, pending = ?, pending_date = ?, "
            "updated = ? WHERE name = ?",
            (book.cash, book.shares, book.pending, book.pending_date, day, book.name),
        )

    def insert_mark(self, row: EquityRow, marks: list[tuple[str, float, float, float]]) -> None:
        """The book at a close: the equity row and one mark per ``(symbol, shares, price, w)``."""
        self.conn.execute(
            "INSERT INTO equity VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(asdict(row).values())
        )
        self.conn.executemany(
            "INSERT INTO marks VALUES (?, ?, ?, ?, ?)", [(row.date, *m) for m in marks]
        )

    def set_stepped(self, day: str) -> None:
        """Mark ``day``'s close as a stepped day."""
        self.conn.execute("UPDATE equity SET stepped = 1 WHERE date = ?", (day,))

    def insert_step(self, values: dict[str, Any]) -> None:
        """Record a step (column -> value)."""
        names = ", ".join(values)
        self.conn.execute(
            f"INSERT INTO steps ({names}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )

    def insert_adaptation(
        self, day: str, support: tuple[str, str], adapt_days: int, params_hash: str
    ) -> None:
        """Record an adaptation: its day, support dates, K and task-state hash."""
        self.conn.execute(
            "INSERT OR IGNORE INTO adaptations VALUES (?, ?, ?, ?, ?)",
            (day, support[0], support[1], adapt_days, params_hash),
        )

    def insert_event(self, day: str, kind: str, detail: dict[str, Any] | str) -> None:
        """Record a guardrail event."""
        text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
        self.conn.execute(
            "INSERT INTO guardrail_events (date, kind, detail) VALUES (?, ?, ?)", (day, kind, text)
        )

    def set_guard_state(self, killed: bool, fallback: bool, day: str) -> None:
        """Set the ``(killed, fallback)`` flags as of ``day``."""
        self.conn.execute(
            "UPDATE guard_state SET killed = ?, fallback = ?, updated = ? WHERE id = 1",
            (int(killed), int(fallback), day),
        )


def _seed_books(conn: sqlite3.Connection, account: Account) -> None:
    """A new account's books: its cash, shadow books, guard state and symbols."""
    conn.execute("INSERT INTO cash VALUES (1, ?, ?)", (account.initial_cash, account.created))
    conn.executemany(
        "INSERT INTO shadow_books VALUES (?, ?, 0.0, NULL, NULL, NULL)",
        [(name, account.initial_cash) for name in SHADOW_BOOKS],
    )
    conn.execute("INSERT INTO guard_state VALUES (1, 0, 0, NULL)")
    pairs = zip(split_specs(account.symbol), split_specs(account.feed), strict=True)
    insert_account_symbols(conn, list(pairs))
