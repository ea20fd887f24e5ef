"""What every command module shares: the parser class, exit codes and the shared options.

Nothing here imports a heavy library (pandas, numpy, torch) at import time: ``--help`` and
``data list`` must answer fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from market_metarl.parallel import Backend

EXIT_OK, EXIT_UNEXPECTED, EXIT_BAD_INPUT = 0, 1, 2

SubParsers = argparse._SubParsersAction  # the type of ``add_subparsers()``'s result
"""What each command module's ``register(sub)`` adds its subcommands to."""


class UsageError(Exception):
    """Bad command-line usage (turned into exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line instead of usage text and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise :class:`UsageError` (the caller prints one ``error:`` line, exit 2)."""
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class AlgorithmNames:
    """The registry's algorithm names, read when argparse checks ``--algo`` or prints its help.

    Used as ``choices``: evaluated at parse time, not when the parser is built, so an algorithm
    registered later (a plug-in, a test) is accepted, and ``--help`` does not import the registry
    (which imports pandas through ``market_metarl.types``).
    """

    def _names(self) -> tuple[str, ...]:
        from market_metarl.meta.registry import algorithm_names

        return algorithm_names()

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def add_algo(p: argparse.ArgumentParser) -> None:
    """The ``--algo`` option: a name of :mod:`market_metarl.meta.registry`."""
    p.add_argument(
        "--algo",
        choices=AlgorithmNames(),
        metavar="ALGO",
        help="one of %(choices)s (default: [train] algo)",
    )


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """Fail on any of the integer options ``names`` that is given and below 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def finite_float(text: str) -> float:
    """An argparse ``type``: a finite number (``inf``, ``nan`` and ``1e400`` are refused)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


BACKEND_CHOICES = ("local", "ray", "processes")
"""``market_metarl.parallel.BACKENDS``, spelled here so ``--help`` imports nothing heavy."""


def add_backend(p: argparse.ArgumentParser) -> None:
    """The ``--backend``, ``--address`` and ``--workers`` options."""
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="local",
        help="where independent pieces run: this process (local, the default), Ray "
        "(pip install 'market-metarl[distributed]') or a pool of worker processes on this "
        "machine (processes)",
    )
    p.add_argument(
        "--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)"
    )
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes of --backend processes, or CPUs of a local Ray (default: all cores)",
    )


def check_backend(args: argparse.Namespace) -> None:
    """Fail fast, before any data is loaded, on backend options that cannot work."""
    require_positive(args, "workers")
    if args.backend == "ray":
        import os

        from market_metarl.parallel import check_reachable, import_ray

        import_ray()
        address = args.address or os.environ.get("RAY_ADDRESS")
        if address:
            check_reachable(address)
    elif args.address:
        raise UsageError("--address names a Ray cluster; use it with --backend ray")


@contextmanager
def backend_of(args: argparse.Namespace) -> Iterator[Backend]:
    """The backend the options name, closed on exit."""
    from market_metarl.parallel import get_backend

    backend = get_backend(args.backend, args.address, args.workers)
    try:
        yield backend
    finally:
        backend.close()


def write_text(path: Path, text: str) -> None:
    """Write an output file atomically; a missing folder is a usage error (nothing written)."""
    from market_metarl.fileio import atomic_write_text

    if path.parent and not path.parent.exists():
        raise UsageError(f"output folder {path.parent} does not exist; create it first")
    atomic_write_text(path, text)


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with the value cast to int, else float, else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--param {text!r} must look like key=value, e.g. n_states=3")
    for cast in (int, float):
        try:
            number = cast(value)
        except ValueError:
            continue
        if number != number or abs(number) == float("inf"):
            raise UsageError(f"--param {key} must be a finite number, got {value!r}")
        return key, number
    return key, value


def add_json(p: argparse.ArgumentParser) -> None:
    """The ``--json`` option: one JSON object on stdout, the text for people on stderr."""
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout (the usual text goes to stderr)",
    )


@contextmanager
def text_to_stderr(args: argparse.Namespace) -> Iterator[None]:
    """With ``--json``, what is printed inside goes to stderr, so stdout holds only the JSON."""
    if not getattr(args, "json", False):
        yield
        return
    with redirect_stdout(sys.stderr):
        yield


def print_json(obj: Any) -> None:
    """Print ``obj`` as one line of JSON (sorted keys; NaN and infinities as ``null``)."""
    from market_metarl.fileio import json_safe

    print(json.dumps(json_safe(obj), sort_keys=True, default=str), flush=True)


class _StderrNotes(logging.Handler):
    """Log records as ``note: ...`` lines on the ``sys.stderr`` of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {record.getMessage()}", file=sys.stderr)


def log_notes_to_stderr() -> None:
    """Show the package's INFO log lines (a ledger migrated...) as ``note:`` lines, once."""
    logger = logging.getLogger("market_metarl")
    if not any(isinstance(h, _StderrNotes) for h in logger.handlers):
        logger.addHandler(_StderrNotes(logging.INFO))
        logger.setLevel(logging.INFO)
