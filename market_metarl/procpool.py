"""The ``processes`` backend: pieces on a pool of worker processes on this machine.

A machine without Ray still uses its cores: :class:`ProcessBackend` runs the pieces of a MAML
meta-batch, a backtest or a sweep on a :class:`concurrent.futures.ProcessPoolExecutor` whose
workers are started with ``spawn`` (a fresh interpreter: ``fork`` would copy torch's thread pools
in whatever state they are, which can deadlock) and run torch on one thread each. It needs
nothing beyond the standard library.

Transport: the piece function, its items and the ``shared`` value are pickled once in this process
(plain :mod:`pickle`, so tensors travel as bytes rather than through shared-memory handles), and
the results come back the same way. A worker unpickles ``shared`` once per call and hands the same
object to each of its pieces, as the local backend does. The piece function must therefore be
picklable: defined at module level, not a lambda or a nested function.

Results are those of the local backend (see :mod:`market_metarl.parallel`): in item order from
:meth:`ProcessBackend.map`, tagged with their index from :meth:`ProcessBackend.imap`.

Failures: a piece that raises has its exception re-raised here with its own type and message
(the worker's traceback is attached as the cause). A worker process that dies is a
:class:`~market_metarl.types.RunError` (not retried). When a call stops early (a piece failed, the
caller stopped iterating, Ctrl-C), pending pieces are cancelled and, if any piece is still
running (or the call was interrupted while submitting, so a piece may run unseen), the workers
are stopped; the next call starts a fresh pool. Workers ignore Ctrl-C: this process handles it.

Stopping never blocks without bound: workers are sent SIGTERM, then SIGKILL after
:data:`STOP_WAIT_S` seconds, each wait bounded, and the pool is shut down without waiting
(``shutdown(wait=False, cancel_futures=True)``). Waiting on the executor instead
(``shutdown(wait=True)``) leaves this process at the mercy of its management thread, which can
block for good reading a result that a killed worker left half-written.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess
from typing import Any

from market_metarl.chunks import PieceFn, split
from market_metarl.types import ConfigError, RunError

START_METHODS: tuple[str, ...] = ("spawn", "forkserver")
"""Start methods that are safe with torch's threads (never ``fork``)."""
MAX_DEFAULT_WORKERS = 32
"""The default pool size is the usable cores, at most this many."""
THREAD_ENV: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Thread settings each worker pins to 1 (for itself and anything it starts)."""
STOP_WAIT_S = 5.0
"""Seconds a stopping pool waits for its workers to exit, after SIGTERM and again after SIGKILL."""

_worker_shared: dict[str, Any] = {}
"""In a worker: the unpickled ``shared`` value of the call in progress, by its token."""


def default_workers() -> int:
    """The cores this process may use (its CPU affinity), between 1 and :data:`MAX_DEFAULT_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


def init_worker() -> None:
    """A worker's initializer: torch on one thread, Ctrl-C left to the parent process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for key in THREAD_ENV:
        os.environ[key] = "1"
    import torch

    torch.set_num_threads(1)


def run_pickled(token: str, shared: bytes, chunk: bytes) -> bytes:
    """One pool task, in a worker: the pieces of a pickled ``(fn, items)``, results pickled.

    Args:
        token: Names the call ``shared`` belongs to; it is unpickled once per call and worker.
        shared: The pickled ``shared`` value.
        chunk: The pickled ``(fn, items)``.

    Returns:
        The pickled list of ``fn(shared, item)``, in item order.
    """
    if token not in _worker_shared:
        _worker_shared.clear()
        _worker_shared[token] = pickle.loads(shared)
    fn, items = pickle.loads(chunk)
    results = [fn(_worker_shared[token], item) for item in items]
    return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)


def _dumps(value: Any, what: str) -> bytes:
    """``value`` pickled, or a :class:`ConfigError` saying why the pool cannot take it."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"--backend processes cannot send {what} to a worker process ({exc}); "
            "a piece function must be defined at module level, not a lambda or nested function"
        ) from None


def join_all(processes: Sequence[BaseProcess], seconds: float) -> None:
    """Wait until every process has exited, for ``seconds`` at most in all."""
    deadline = time.monotonic() + seconds
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))


def stop_pool(pool: ProcessPoolExecutor, kill: bool) -> None:
    """Shut ``pool`` down without ever blocking for long (see the module docstring).

    Args:
        pool: The executor; it takes no more work afterwards.
        kill: Stop the workers now (SIGTERM) rather than let them finish the pieces they run.
            Either way a worker still alive after :data:`STOP_WAIT_S` seconds gets SIGKILL.
    """
    processes: list[BaseProcess] = list((pool._processes or {}).values())
    manager: threading.Thread | None = getattr(pool, "_executor_manager_thread", None)
    results: Any = getattr(pool, "_result_queue", None)
    pool.shutdown(wait=False, cancel_futures=True)  # takes no new work; pending pieces cancelled
    if kill:
        for process in processes:
            process.terminate()
    join_all(processes, STOP_WAIT_S)
    for process in processes:
        if process.is_alive():
            process.kill()
    join_all(processes, STOP_WAIT_S)
    if results is not None and not any(p.is_alive() for p in processes):
        # Every writer is gone: end-of-file now wakes a management thread stuck reading a
        # result that a killed worker left half-written (this process holds a write end too).
        results._writer.close()
    if manager is not None:
        manager.join(STOP_WAIT_S)


class ProcessBackend:
    """Pieces on a pool of ``spawn``-ed worker processes, one torch thread each.

    Args:
        workers: Pieces that run at once (default: :func:`default_workers`).
        start_method: ``spawn`` (default) or ``forkserver``.

    The pool starts on first use, its workers as pieces need them; :meth:`close` shuts it down.
    """

    name = "processes"

    def __init__(self, workers: int | None = None, start_method: str = "spawn") -> None:
        """Check the settings; no process starts until the first piece is submitted.

        Raises:
            ConfigError: ``workers < 1`` or a start method other than ``spawn``/``forkserver``.
        """
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        if start_method not in START_METHODS:
            raise ConfigError(
                f"start method {start_method!r} is not safe with torch; valid: "
                f"{', '.join(START_METHODS)}"
            )
        self._workers = workers or default_workers()
        self._context = multiprocessing.get_context(start_method)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        """Worker processes of the pool (pieces that run at once)."""
        return self._workers

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=self._context, initializer=init_worker
            )
        return self._pool

    def _pack(
        self, fn: PieceFn, items: Sequence[Any], shared: Any, groups: list[range]
    ) -> tuple[bytes, list[bytes]]:
        """The pickled ``shared`` value and one pickled ``(fn, items)`` per group (no pool yet)."""
        shared_bytes = _dumps(shared, "the shared inputs")
        chunks = [_dumps((fn, [items[i] for i in g]), f"piece function {fn!r}") for g in groups]
        return shared_bytes, chunks

    def _submit(
        self,
        packed: tuple[bytes, list[bytes]],
        groups: list[range],
        pending: dict[Future[bytes], range],
    ) -> None:
        """One pool task per group, each future recorded in ``pending`` as soon as it exists.

        The caller's ``finally`` sees every recorded future; one interrupted between its submission
        and its recording is caught by :meth:`_cancel` comparing the counts.
        """
        token = uuid.uuid4().hex
        shared_bytes, chunks = packed
        pool = self._executor()
        for chunk, group in zip(chunks, groups, strict=True):
            pending[pool.submit(run_pickled, token, shared_bytes, chunk)] = group

    def _result(self, future: Future[bytes], what: str) -> list[Any]:
        """The chunk's results; a piece's own exception passes through unchanged."""
        try:
            data = future.result()
        except BrokenProcessPool as exc:
            self._terminate()
            raise RunError(
                f"a worker process died running {what} ({exc}); "
                "it may have run out of memory or been killed"
            ) from None
        results: list[Any] = pickle.loads(data)
        return results

    def imap(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None
    ) -> Iterator[tuple[int, Any]]:
        """``(index, fn(shared, items[index]))`` for every item as each finishes, one task each.

        Pieces that finish together are yielded in item order. Unfinished pieces are cancelled
        when the iteration stops early or a piece fails.
        """
        if not items:
            return
        groups = [range(i, i + 1) for i in range(len(items))]
        packed = self._pack(fn, items, shared, groups)
        pending: dict[Future[bytes], range] = {}
        finished = 0
        try:
            self._submit(packed, groups, pending)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f].start):
                    results = self._result(future, f"piece {pending[future].start}")
                    group = pending.pop(future)
                    finished += 1
                    yield from zip(group, results, strict=True)
        finally:
            self._cancel(pending, unseen=len(groups) - finished - len(pending))

    def map(
        self, fn: PieceFn, items: Sequence[Any], shared: Any = None, chunks: int | None = None
    ) -> list[Any]:
        """Results in item order, the items grouped into ``chunks`` pool tasks (default: one each).

        Raises:
            RunError: A worker process died.
            ConfigError: The piece function or its inputs cannot be pickled.
        """
        if not items:
            return []
        groups = split(len(items), chunks or len(items))
        packed = self._pack(fn, items, shared, groups)
        pending: dict[Future[bytes], range] = {}
        out: list[Any] = []
        finished = 0
        try:
            self._submit(packed, groups, pending)
            for future, group in list(pending.items()):
                out.extend(self._result(future, f"pieces {group.start}..{group.stop - 1}"))
                del pending[future]
                finished += 1
        finally:
            self._cancel(pending, unseen=len(groups) - finished - len(pending))
        return out

    def _cancel(self, pending: dict[Future[bytes], range], unseen: int) -> None:
        """Cancel pieces not started; stop the workers if any piece may still be running.

        Args:
            pending: The call's futures not yet consumed.
            unseen: Pool tasks of the call that are neither consumed nor in ``pending``: never
                submitted, or submitted when an interrupt struck before they were recorded. The
                second kind may be running, so any of them stops the workers.

        So a rerun never overlaps a piece still writing its files.
        """
        running = [f for f in pending if not f.cancel() and not f.done()]
        if running or unseen:
            self._terminate()

    def _terminate(self) -> None:
        """Stop every worker now and drop the pool (bounded; the next call starts a fresh one)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            stop_pool(pool, kill=True)

    def close(self) -> None:
        """Shut the pool down (pending pieces are cancelled); the backend can be used again.

        Workers exit once their running piece is done; one still running after
        :data:`STOP_WAIT_S` seconds is killed.
        """
        pool, self._pool = self._pool, None
        if pool is not None:
            stop_pool(pool, kill=False)

    def __repr__(self) -> str:
        """``ProcessBackend(workers=N)``."""
        return f"ProcessBackend(workers={self.workers})"
