"""The process backend (``--backend processes``): item order, chunking, errors with their own
type and message, a dead worker, interruption, and no worker process left behind.

Training, backtests and sweeps on it are compared with the local backend in
``tests/meta/test_processes.py``. One pool serves most tests here (its workers take seconds to
start); the piece functions are at module level, so they can be pickled.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from market_metarl.cli import main
from market_metarl.cli._common import BACKEND_CHOICES
from market_metarl.parallel import BACKENDS, LOCAL, get_backend
from market_metarl.procpool import ProcessBackend, default_workers
from market_metarl.types import ConfigError, RunError

pytestmark = pytest.mark.xdist_group("processes")  # one pool for the module under -n


def square_plus(shared: int, item: int) -> int:
    return item * item + shared


def slow_first(shared: int, item: int) -> int:
    time.sleep(0.5 if item == 0 else 0.0)
    return item * shared


def bad_item(shared: Any, item: int) -> int:
    if item == 2:
        raise ConfigError(f"item {item} is bad")
    return item


def worker_pid(shared: Any, item: int) -> int:
    time.sleep(0.2)  # long enough that every worker takes part
    return os.getpid()


def module_file(shared: Any, item: int) -> str:
    import market_metarl

    return market_metarl.__file__ or ""


def torch_threads(shared: Any, item: int) -> tuple[int, str | None]:
    import torch

    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def die_on_one(shared: Any, item: int) -> int:
    if item == 1:
        os._exit(1)  # the worker process dies mid-piece
    return item


def announce_and_sleep(shared: str, item: int) -> int:
    """Write ``<pid>-<item>`` into the folder ``shared``, then sleep far past any test timeout."""
    (Path(shared) / f"{os.getpid()}-{item}").touch()
    time.sleep(3600.0)  # a parent that waited for its pieces could never pass the test
    return item


def sleep_long(shared: Any, item: int) -> int:
    time.sleep(0.1 if item == 0 else 3600.0)  # far past any timeout: waiting for it fails a test
    return item


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessBackend]:
    backend = ProcessBackend(workers=2)
    yield backend
    backend.close()


def gone(pids: set[int], seconds: float = 30.0) -> bool:
    """True when none of ``pids`` is a live process (waits up to ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = set()
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.add(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("backend", ["local", "processes"])
def test_map_and_imap_match_the_local_backend(backend: str, pool: ProcessBackend) -> None:
    b = LOCAL if backend == "local" else pool
    assert b.map(square_plus, [3, 1, 2], 10) == [19, 11, 14]
    assert b.map(square_plus, list(range(7)), 1, chunks=3) == [i * i + 1 for i in range(7)]
    assert b.map(square_plus, [], 10) == []
    assert sorted(b.imap(square_plus, [3, 1, 2], 10)) == [(0, 19), (1, 11), (2, 14)]
    assert list(b.imap(square_plus, [], 10)) == []


def test_results_keep_item_order_whatever_finishes_first(pool: ProcessBackend) -> None:
    assert pool.workers == 2
    assert pool.map(slow_first, list(range(7)), 3, chunks=2) == [3 * i for i in range(7)]
    finished = list(pool.imap(slow_first, [0, 1], 5))  # in the order they finish
    assert sorted(finished) == [(0, 0), (1, 5)]
    assert len(set(pool.map(worker_pid, list(range(4)), None))) <= 2


def test_workers_run_this_checkout(pool: ProcessBackend) -> None:
    import market_metarl

    assert pool.map(module_file, [0, 1], None) == [market_metarl.__file__] * 2


def test_an_error_in_a_piece_keeps_its_type_and_message(pool: ProcessBackend) -> None:
    with pytest.raises(ConfigError) as info:
        pool.map(bad_item, [0, 1, 2, 3], None)
    assert str(info.value) == "item 2 is bad"
    with pytest.raises(ConfigError, match=r"^item 2 is bad$"):
        list(pool.imap(bad_item, [2, 0], None))
    assert pool.map(bad_item, [0, 1], None) == [0, 1]  # the pool still works


def test_one_torch_thread_a_worker_and_none_left_after_an_error_and_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what the workers inherit
    backend = get_backend("processes", workers=2)
    assert backend.map(torch_threads, [0], None) == [(1, "1")]
    pids = set(backend.map(worker_pid, list(range(4)), None))
    assert pids and os.getpid() not in pids
    with pytest.raises(ConfigError, match="item 2 is bad"):
        backend.map(bad_item, [0, 1, 2, 3], None)
    backend.close()
    assert gone(pids)
    assert not [p for p in multiprocessing.active_children() if p.pid in pids]


def test_a_dead_worker_is_a_run_error_and_the_next_call_starts_a_fresh_pool(
    pool: ProcessBackend,
) -> None:
    with pytest.raises(RunError, match=r"a worker process died running pieces 0\.\.0"):
        pool.map(die_on_one, [1], None)
    assert pool.map(die_on_one, [0, 2], None) == [0, 2]


def test_stopping_early_cancels_pending_pieces_and_stops_running_ones(
    pool: ProcessBackend,
) -> None:
    for index, result in pool.imap(sleep_long, [0, 1, 2, 3], None):
        workers = {p.pid for p in multiprocessing.active_children() if p.pid is not None}
        assert (index, result) == (0, 0) and workers
        stopped = time.monotonic()
        break  # the caller stops: piece 1 is running, 2 and 3 are pending
    assert time.monotonic() - stopped < 120  # bounded (a loaded machine); nobody waited an hour
    assert gone(workers)
    assert pool.map(square_plus, [2], 1) == [5]  # a fresh pool


INTERRUPT_SCRIPT = """\
import sys
from market_metarl.procpool import ProcessBackend
from test_procpool import announce_and_sleep
if __name__ == "__main__":
    try:
        ProcessBackend(workers=2).map(announce_and_sleep, [0, 1, 2], sys.argv[1])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
"""


def started_workers(folder: Path, child: subprocess.Popen[str], n: int, seconds: float) -> set[int]:
    """The pids of the first ``n`` workers to start a piece (each writes a file), waiting on them.

    Spawn-started workers import torch: under load that can take a minute, so the wait is long but
    bounded, and it stops as soon as the child process ends.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and child.poll() is None:
        pids = {int(f.name.split("-")[0]) for f in folder.iterdir()}
        if len(pids) >= n:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"{n} workers did not start within {seconds} s (exit {child.poll()})")


def test_ctrl_c_stops_the_pool_and_leaves_no_worker(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it.

    The pieces sleep for an hour, so the parent passes only if it stops its workers rather than
    waiting for them; the timeouts are generous (a loaded machine) and bounded.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    script, folder = tmp_path / "interrupt.py", tmp_path / "started"
    script.write_text(INTERRUPT_SCRIPT)
    folder.mkdir()
    child = subprocess.Popen(
        [sys.executable, str(script), str(folder)],
        stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    pids: set[int] = set()
    try:
        pids = started_workers(folder, child, 2, seconds=600)  # the third piece is pending
        os.killpg(child.pid, signal.SIGINT)
        out, _ = child.communicate(timeout=180)
    finally:  # never leave the child or a worker behind, even when the test fails
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert child.returncode == 130 and out.strip() == "interrupted"
    assert gone(pids)


def test_an_interrupt_while_submitting_stops_the_pieces_already_sent(
    pool: ProcessBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C right after the pool took a piece but before the backend recorded its future."""
    real_submit = ProcessPoolExecutor.submit
    calls: list[int] = []

    def submit_then_interrupt(self: ProcessPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        future = real_submit(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second piece is in the pool, unrecorded
        return future

    pool.map(square_plus, [1, 2], 0)  # workers up, so the pieces below start at once
    workers = {p.pid for p in multiprocessing.active_children() if p.pid is not None}
    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit_then_interrupt)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        pool.map(sleep_long, [1, 2, 3], None)
    assert time.monotonic() - started < 120  # bounded (a loaded machine); nobody waited an hour
    monkeypatch.undo()
    assert gone(workers)
    assert pool.map(square_plus, [2], 1) == [5]  # a fresh pool


def test_an_unpicklable_piece_function_is_a_clear_error(pool: ProcessBackend) -> None:
    with pytest.raises(ConfigError, match="must be defined at module level"):
        pool.map(lambda shared, item: item, [1], None)


def test_settings_are_checked() -> None:
    assert 1 <= default_workers() <= 32
    assert ProcessBackend().workers == default_workers()
    assert repr(ProcessBackend(workers=3)) == "ProcessBackend(workers=3)"
    with pytest.raises(ConfigError, match="--workers must be >= 1, got 0"):
        ProcessBackend(workers=0)
    with pytest.raises(ConfigError, match="'fork' is not safe with torch"):
        ProcessBackend(start_method="fork")
    with pytest.raises(ConfigError, match="--address names a Ray cluster"):
        get_backend("processes", address="127.0.0.1:6379")
    assert BACKEND_CHOICES == BACKENDS


@pytest.mark.parametrize("command", ["sweep", "train", "backtest"])
def test_cli_backend_processes_with_an_address_exits_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(Path(__file__).resolve().parents[1] / "envs" / "synthetic.toml")
    out = tmp_path / "out"
    argv = {
        "sweep": ["sweep", "--config", config, "--seeds", "2", "--out", str(out)],
        "train": ["train", "--config", config, "--out", str(out)],
        "backtest": ["backtest", "--run", str(tmp_path), "--out", str(out)],
    }[command]
    assert main([*argv, "--backend", "processes", "--address", "h:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--address names a Ray cluster" in err
    assert main([*argv, "--backend", "processes", "--workers", "0"]) == 2
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err
    assert not out.exists()
