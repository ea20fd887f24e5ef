"""The ``market-metarl`` command line (also ``python -m market_metarl``): one module per command.

Exit codes: 0 success; 2 bad input, with one line ``error: ...`` on stderr and no traceback; 1 for
anything unexpected (a full or read-only disk, SQLite's "database or disk is full" included: one
``error:`` line too). Heavy libraries are imported inside the handlers, so ``--help``, ``--version``
and ``data list`` answer fast.

Modules: ``_common`` (the parser, exit codes, shared options), ``data``, ``regimes``, ``train``,
``sweep``, ``backtest`` and ``paper``; each has a ``register(sub)`` that adds its subcommands.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings
from collections.abc import Sequence

from market_metarl._version import __version__
from market_metarl.cli import backtest, data, paper, regimes, sweep, train
from market_metarl.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_UNEXPECTED,
    Parser,
    UsageError,
    log_notes_to_stderr,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_UNEXPECTED", "UsageError", "build_parser", "main"]

COMMANDS = (data, regimes, train, backtest, sweep, paper)
"""The command modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (each handler is the ``handler`` default of its namespace)."""
    parser = Parser(
        prog="market-metarl",
        description="Meta-RL that adapts trading strategies to new market regimes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (bad input: one ``error:`` line, 2)."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    log_notes_to_stderr()
    try:
        with warnings.catch_warnings(record=True) as caught:
            code = int(args.handler(args))
        _report_warnings(caught)
        return code
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in OUT_OF_ROOM:
            raise
        print(f"error: {exc.strerror}: {exc.filename or 'writing the output'}", file=sys.stderr)
        return EXIT_UNEXPECTED
    except Exception as exc:
        if _is_disk_full(exc):
            print(f"error: {exc}: free some space, then run the command again", file=sys.stderr)
            return EXIT_UNEXPECTED
        broker = _broker_failure(exc)
        if broker is not None:
            print(f"error: {broker}", file=sys.stderr)
            return EXIT_UNEXPECTED
        if not _is_user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


OUT_OF_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
"""Errors of the disk, not of the input: one line and exit 1 (outputs are written atomically, so
nothing half-written is left)."""


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    """After a command succeeded, the library warnings it raised, one ``warning:`` line each.

    They are held back while the command runs, so a failed command prints its one ``error:``
    line and nothing else.
    """
    for message in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
        print(f"warning: {message}", file=sys.stderr)


def _broker_failure(exc: Exception) -> str | None:
    """One line for a broker API that failed outside the order path, else None.

    A read (account, clock, calendar, positions, bars) that fails reaches here; its text is
    :func:`~market_metarl.live.alpaca_client.failure`'s, the order path's own reading of a failed
    request. The order path handles its own failures (write-ahead, lookup by client id), so
    whatever the step had done is either committed or resumed by a rerun (the soak test kills
    steps anywhere). The client module is looked up in ``sys.modules``: a command that never
    talked to a broker has not imported it.
    """
    client = sys.modules.get("market_metarl.live.alpaca_client")
    if client is None:
        return None
    try:
        _, text = client.failure(exc)
    except Exception as other:
        if other is exc:  # not a failed request
            return None
        raise
    return (
        f"the broker's API failed ({text}); the ledger is consistent (orders are written ahead "
        "and looked up by client id on the next run): run the same command again"
    )


def _is_disk_full(exc: Exception) -> bool:
    """Whether ``exc`` is SQLite's "database or disk is full" (``SQLITE_FULL``, a ledger write).

    SQLite reports a full disk as its own error, not as ``OSError(ENOSPC)``, and rolls the
    transaction back itself; ``sqlite3`` is looked up in ``sys.modules`` like the package's types.
    """
    sqlite3 = sys.modules.get("sqlite3")
    return (
        sqlite3 is not None
        and isinstance(exc, sqlite3.Error)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )


def _is_user_error(exc: Exception) -> bool:
    """Whether ``exc`` is a :class:`~market_metarl.types.MarketMetaRLError` (bad input: exit 2).

    Looked up in ``sys.modules`` rather than imported: ``market_metarl.types`` imports pandas,
    which ``data list`` must not wait for, and if it was never imported, no error of it was raised.
    """
    types = sys.modules.get("market_metarl.types")
    return types is not None and isinstance(exc, types.MarketMetaRLError)
