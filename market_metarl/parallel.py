"""Execution backends: where a map over independent pieces of work runs.

Training, backtests and sweeps hand their independent pieces (the tasks of a MAML meta-batch, the
strategy x seed x market runs of a backtest, the runs of a sweep) to a backend as a *piece
function* ``fn(shared, item) -> result``: ``shared`` is what every piece reads (the policy, the
trained run, the base config), ``item`` what one piece owns (its task, its market, its seed).

- :class:`LocalBackend` (``local``, the default) runs the pieces one after another in this
  process. It needs nothing beyond the core dependencies.
- :class:`RayBackend` (``ray``) runs them as Ray tasks, on a local Ray started for the purpose or
  on an existing cluster (``address``, or the ``RAY_ADDRESS`` environment variable). Ray is an
  optional extra (``pip install 'market-metarl[distributed]'``), imported only here and only
  when this backend is asked for.
- :class:`~market_metarl.procpool.ProcessBackend` (``processes``) runs them on a pool of worker
  processes on this machine, one torch thread each: the cores of one machine without Ray.

Results are the same on every backend: a piece is a pure function of its arguments (each
seeded piece carries its own seed, spawned from the run's root seed, never a global RNG), results
come back in item order whatever order they finish in, and the caller combines them in that
order. How items are grouped into Ray or pool tasks (``chunks``) only changes the transport, never the
arithmetic. The tests and ``benchmarks/scaling.py`` find them bit-identical on one machine, with
torch on every core locally and one thread per Ray worker; on nodes with other CPUs, torch's
kernels may round differently in the last bits. The process backend is held to the same test.

Failures: a Ray worker that dies (killed, out of memory, node lost) is retried up to
``max_retries`` times on another worker; a piece that raises an exception is not retried (the same
inputs would raise again) and its exception reaches the caller unwrapped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

from market_metarl.chunks import PieceFn, run_chunk, split
from market_metarl.types import ConfigError, RunError

T = TypeVar("T")
R = TypeVar("R")
BACKENDS: tuple[str, ...] = ("local", "ray", "processes")
INSTALL_HINT = "pip install 'market-metarl[distributed]'"

FORWARDED_ENV: tuple[str, ...] = ("MARKET_METARL_DATA", "MARKET_METARL_CACHE")
"""Settings of this process that Ray workers get too (where data and the download cache are)."""


class Backend(Protocol):
    """Runs a piece function over items; see the module docstring."""

    name: str

    @property
    def workers(self) -> int:
        """Pieces that can run at once."""
        ...

    def imap(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None
    ) -> Iterator[tuple[int, Any]]:
        """``(index, fn(shared, items[index]))`` for every item, in the order they finish."""
        ...

    def map(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None, chunks: int | None = None
    ) -> list[Any]:
        """``[fn(shared, item) for item in items]``, in item order."""
        ...

    def close(self) -> None:
        """Release what the backend started (a local Ray it launched)."""
        ...


class LocalBackend:
    """Every piece in this process, in item order (the default; no extra dependencies)."""

    name = "local"

    @property
    def workers(self) -> int:
        """Always 1: pieces run one after another."""
        return 1

    def imap(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None
    ) -> Iterator[tuple[int, Any]]:
        """``(index, fn(shared, item))`` for every item, computed lazily in item order."""
        for index, item in enumerate(items):
            yield index, fn(shared, item)

    def map(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None, chunks: int | None = None
    ) -> list[Any]:
        """``[fn(shared, item) for item in items]``; ``chunks`` is accepted and has no effect here."""
        return [fn(shared, item) for item in items]

    def close(self) -> None:
        """Nothing to release."""
        return None

    def __repr__(self) -> str:
        """``LocalBackend()``."""
        return "LocalBackend()"


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--backend ray needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    return ray


class RayBackend:
    """Pieces as Ray tasks on a local Ray or an existing cluster.

    Args:
        address: Cluster to join (``ray://host:10001`` or ``host:6379``); None: the
            ``RAY_ADDRESS`` environment variable if set, otherwise a local Ray is started.
        workers: CPUs of the local Ray started when no cluster is given (default: all cores).
        max_retries: Times a piece whose worker died is run again.

    When Ray is already initialised in this process (by the caller, or by an earlier backend),
    the backend uses it as it is: ``address``, ``workers`` and the forwarded environment only
    apply to a Ray this backend starts, and only that one is shut down by :meth:`close`.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, workers: int | None = None, max_retries: int = 3
    ) -> None:
        """Join or start Ray (see the class docstring) and register the chunk runner as a Ray task.

        Raises:
            ConfigError: Ray is not installed, ``workers < 1``, or the cluster cannot be reached.
        """
        ray = import_ray()
        self._ray = ray
        self._owns = False
        address = address or os.environ.get("RAY_ADDRESS") or None
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        if not ray.is_initialized():
            if address:
                check_reachable(address)
            forwarded = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
            try:
                ray.init(
                    # "local": a new Ray of our own, even where `ray start` runs one here
                    address=address or "local",
                    num_cpus=None if address else (workers or os.cpu_count() or 1),
                    include_dashboard=False,
                    logging_level="WARNING",
                    log_to_driver=True,
                    runtime_env={"env_vars": forwarded} if forwarded else None,
                )
            except ConnectionError as exc:
                raise ConfigError(
                    f"cannot reach the Ray cluster at {address} ({exc}); start one with "
                    "`ray start --head` and pass the address it prints"
                ) from None
            self._owns = True
        self.max_retries = max_retries
        self._remote = ray.remote(num_cpus=1, max_retries=max_retries)(run_chunk)
        self._workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

    @property
    def workers(self) -> int:
        """CPUs of the cluster when this backend was made (one piece runs per CPU)."""
        return self._workers

    def _get(self, ref: Any, what: str) -> list[Any]:
        ray = self._ray
        try:
            return list(ray.get(ref))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError,
        ) as exc:
            raise RunError(
                f"a Ray worker died running {what} {self.max_retries + 1} times "
                f"({type(exc).__name__}); see the Ray logs (/tmp/ray/session_latest/logs)"
            ) from None
        except ray.exceptions.RayError as exc:  # lost objects, runtime env, cancelled...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise RunError(f"Ray failed running {what}: {type(exc).__name__} {first}") from None

    def _submit(
        self, fn: PieceFn, items: Sequence[Any], shared: Any, groups: list[range]
    ) -> dict[Any, range]:
        shared_ref = self._ray.put(shared)
        return {
            self._remote.remote(fn, shared_ref, [items[i] for i in group]): group
            for group in groups
        }

    def imap(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None
    ) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` for every item as each finishes, one Ray task per item.

        Unfinished pieces are cancelled when the iteration stops early or a piece fails.
        """
        if not items:
            return
        pending = self._submit(fn, items, shared, [range(i, i + 1) for i in range(len(items))])
        try:
            while pending:
                done, _ = self._ray.wait(list(pending), num_returns=1)
                for ref in done:
                    group = pending.pop(ref)
                    results = self._get(ref, f"piece {group[0]}")
                    yield from zip(group, results, strict=True)
        finally:
            self._cancel(pending)  # interrupted or failed: stop what has not finished

    def map(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None, chunks: int | None = None
    ) -> list[Any]:
        """Results in item order, the items grouped into ``chunks`` Ray tasks (default: one per item).

        Raises:
            RunError: A worker died more than ``max_retries`` times, or Ray itself failed.
        """
        if not items:
            return []
        groups = split(len(items), chunks or len(items))
        pending = self._submit(fn, items, shared, groups)
        out: list[Any] = []
        try:
            for ref, group in list(pending.items()):
                out.extend(self._get(ref, f"pieces {group.start}..{group.stop - 1}"))
                del pending[ref]
        finally:
            self._cancel(pending)
        return out

    def _cancel(self, refs: dict[Any, range]) -> None:
        """Stop unfinished pieces and wait (briefly, 30 s at most) until they have stopped.

        So a rerun never overlaps a piece still writing its files.
        """
        if not refs:
            return
        for ref in refs:
            self._ray.cancel(ref, force=True)
        self._ray.wait(list(refs), num_returns=len(refs), timeout=30)

    def close(self) -> None:
        """Shut down the local Ray if this backend started it; a joined cluster is left running."""
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False

    def __repr__(self) -> str:
        """``RayBackend(workers=N)``."""
        return f"RayBackend(workers={self.workers})"


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise a clear error when ``host:port`` of a cluster address accepts no connection.

    It fails in seconds rather than after Ray's minutes of retries; ``auto`` and other address
    forms are left to Ray.
    """
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head` and pass the address it prints, or unset RAY_ADDRESS"
        ) from None


def get_backend(name: str, address: str | None = None, workers: int | None = None) -> Backend:
    """The backend called ``name`` (``local``, ``ray`` or ``processes``); see :data:`BACKENDS`.

    ``workers`` sizes a local Ray or the process pool (default: all cores); ``address`` names a
    Ray cluster and goes with ``ray`` only.

    Raises:
        ConfigError: Unknown name, or ``ray`` without Ray installed (the message says how to
            install it), or a cluster address that cannot be reached or is given without ``ray``.
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    if name == "ray":
        return RayBackend(address=address, workers=workers)
    if address:
        raise ConfigError("--address names a Ray cluster; use it with --backend ray")
    if name == "processes":
        from market_metarl.procpool import ProcessBackend

        return ProcessBackend(workers=workers)
    return LocalBackend()


LOCAL = LocalBackend()
"""The default backend."""
