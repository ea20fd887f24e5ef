"""Shared pieces of the fault-injection tests: a fork server that runs CLI commands and kills
them, the counts each test reports, and a tiny config."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

FORK_SERVER = Path(__file__).with_name("fork_server.py")
COUNTS_PROPERTY = "fault_counts"
"""The user property holding a kill test's counts line (read by ``tests/conftest.py``)."""
TINY_TOML = """
[data]
symbols = ["synthetic:ar-regimes?seed=1&tasks=60&days=71"]
warmup_days = 2
[regimes]
method = "known"
min_task_days = 71
[splits]
train = ["2000-01-01", "2009-12-31"]
test = ["2010-03-01", "2019-12-31"]
embargo_days = 20
[costs]
fee_bps = 1.0
slippage_bps = 2.0
[features]
vol_window = 0
momentum_horizons = []
volume_window = 0
drawdown = false
[env]
window = 2
action = "continuous"
max_drawdown = 1.0
[train]
iterations = 12
checkpoint_every = 1
position_input = true
adapt_days = 10
[paper]
every = 5
max_gross = 10.0
max_turnover = 10.0
max_drawdown = 1.0
fallback = false
[train.pooled]
finetune_steps = 2
scratch_steps = 3
[backtest]
hmm_iterations = 5
"""
"""A tiny synthetic task distribution: trains in about a second, checkpoints every iteration.

Its backtest baselines are cheap too (2 fine-tune and 3 from-scratch steps, 5 EM iterations of
the HMM rule, against 10, 50 and 100 by default): every strategy still runs through backtrader,
with the strategies' share of a backtest's CPU about halved (measured: 2.6 s to 1.3 s)."""


@dataclass
class Counts:
    """What a fault test did, printed in the test output.

    ``kills``: runs ended by a signal; ``resumes``: runs started on what a kill left; ``equal``:
    finished runs whose result was checked equal to an uninterrupted run's.
    """

    kills: int = 0
    resumes: int = 0
    equal: int = 0
    signals: dict[str, int] = field(default_factory=dict)

    def report(self, what: str, duration: float, server: ForkServer) -> str:
        """One line: the counts, an uninterrupted run's seconds and the CPU seconds of all runs."""
        sigs = ", ".join(f"{k} {v}" for k, v in sorted(self.signals.items()))
        return (
            f"{what}: {self.kills} kills ({sigs}), {self.resumes} reruns, {self.equal} equal; "
            f"uninterrupted run {duration:.1f} s, CPU of every run {server.cpu:.1f} s"
        )

    def publish(
        self, request: pytest.FixtureRequest, what: str, duration: float, server: ForkServer
    ) -> None:
        """Print :meth:`report`'s line and attach it to the test's report as ``fault_counts``.

        ``tests/conftest.py`` prints every attached line in the terminal summary (also under
        ``pytest -n 2``: user properties travel from the workers), so ``make test`` shows them.
        """
        line = self.report(what, duration, server)
        print(line)
        assert isinstance(request.node, pytest.Item)
        request.node.user_properties.append((COUNTS_PROPERTY, line))


class Ran(NamedTuple):
    """One command run by the fork server."""

    code: int
    """Exit code; negative: the signal that ended it."""
    seconds: float
    """Wall-clock seconds from its start to its end."""
    cpu: float
    """CPU seconds it used (user and system)."""


class ForkServer:
    """Runs CLI commands in children forked from one warm process (see ``fork_server.py``)."""

    def __init__(self, cwd: Path) -> None:
        """Start the server in ``cwd``."""
        self.proc = subprocess.Popen(
            [sys.executable, str(FORK_SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=cwd,
        )
        assert self._line() == "ready"
        self.cpu = 0.0

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return line.strip()

    def run(
        self, argv: list[str], kill_after: float | None = None, sig: int = signal.SIGKILL
    ) -> Ran:
        """Run ``argv``; with ``kill_after``, send ``sig`` that many seconds after it started.

        Returns:
            The exit code (negative: the signal that ended it), the seconds it ran and its CPU
            seconds (also added to ``cpu``).
        """
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        line = self._line()
        start = time.perf_counter()
        pid = int(line.split()[1])
        if kill_after is not None:
            time.sleep(kill_after)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        while not (line := self._line()).startswith("exit "):
            pass
        _, code, cpu = line.split()
        self.cpu += float(cpu)
        return Ran(int(code), time.perf_counter() - start, float(cpu))

    def close(self) -> None:
        """Stop the server."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


TRAIN = ["train", "--config", "tiny.toml", "--algo", "pooled"]
"""The ``train`` command of the fault tests (``--out`` added)."""


def check_ledger(db: Path) -> None:
    """SQLite integrity, and no order or step recorded twice."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orders = conn.execute("SELECT COUNT(*), COUNT(DISTINCT client_id) FROM orders").fetchone()
        assert orders[0] == orders[1]
        steps = conn.execute("SELECT COUNT(*), COUNT(DISTINCT date) FROM steps").fetchone()
        assert steps[0] == steps[1]
    finally:
        conn.close()
