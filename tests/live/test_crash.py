"""Crash safety: SIGKILL at random moments never corrupts the ledger or trades twice; SIGINT and
SIGTERM stop the loop cleanly; a failure inside a step's transaction leaves nothing behind."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from live_helpers import check_invariants, ledger_targets, rolling_reference, sessions

from market_metarl.live.account import PaperSession, init_account
from market_metarl.live.ledger import Ledger
from market_metarl.live.loop import run_loop
from market_metarl.live.step import step

START, END = "2019-01-02", "2019-04-30"
KILLS = 15
FORK_SERVER = Path(__file__).with_name("fork_server.py")
VOLATILE = ("recorded_at",)
"""Columns that hold wall-clock times (left out when two ledgers are compared)."""


def paper_run(db: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "market_metarl",
        "paper",
        "run",
        "--db",
        str(db),
        "--start",
        START,
        "--asof",
        END,
        *extra,
    ]


@pytest.fixture
def ledgers(maml_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two copies of one freshly created ledger: ``(reference, under test)``."""
    base = tmp_path / "base.db"
    init_account(base, maml_run, "bundled:SPY")
    ref, test = tmp_path / "ref.db", tmp_path / "test.db"
    shutil.copy(base, ref)
    shutil.copy(base, test)
    return ref, test


def uninterrupted(db: Path, until: str = END) -> dict[str, list[tuple[object, ...]]]:
    with PaperSession.open(db) as session:
        run_loop(session, until=dt.date.fromisoformat(until), start=dt.date.fromisoformat(START))
    with Ledger.open(db) as ledger:
        return ledger.dump(VOLATILE)


def test_sigkill_at_random_moments_never_corrupts_nor_trades_twice(
    ledgers: tuple[Path, Path], maml_run: Path
) -> None:
    ref, db = ledgers
    want = uninterrupted(ref)
    server = subprocess.Popen(
        [sys.executable, str(FORK_SERVER), *paper_run(db)[3:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        assert server.stdout.readline().strip() == "ready"
        rng = np.random.default_rng(20240601)
        kills, progress = 0, [0]
        while True:
            server.stdin.write("go\n")
            server.stdin.flush()
            pid = int(server.stdout.readline().split()[1])
            banner = server.stdout.readline()  # printed once the ledger is open
            assert banner.startswith("paper run:"), banner
            line = ""
            if kills < KILLS:
                # after 0 to 3 committed steps, at a random moment of the next one
                for _ in range(int(rng.integers(0, 4))):
                    line = server.stdout.readline()
                    if line.startswith("exit "):
                        break
                else:
                    time.sleep(rng.uniform(0.0, 0.03))
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            while not line.startswith("exit "):
                line = server.stdout.readline()
            code = int(line.split()[1])
            if code == 0:
                break
            assert code == -signal.SIGKILL
            kills += 1
            progress.append(check_invariants(db))
            assert progress[-1] >= progress[-2]
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    assert kills == KILLS, f"the run finished after {kills} kills; lengthen it"
    assert progress[-1] < len(sessions(START, END)), "the kills came too late to interrupt"
    assert len(set(progress)) > KILLS // 2, "most kills should land after some progress"
    assert check_invariants(db) == len(sessions(START, END))
    with Ledger.open(db) as ledger:
        got = ledger.dump(VOLATILE)
    assert got == want


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_cleanly_and_the_next_run_resumes(
    ledgers: tuple[Path, Path], maml_run: Path, sig: signal.Signals
) -> None:
    _, db = ledgers
    proc = subprocess.Popen(
        paper_run(db, "--every", "0.2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]  # the banner and two steps
    assert lines[2].startswith("2019-01-03"), lines
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped by signal" in out and not err.strip()
    stepped = check_invariants(db)
    assert 2 <= stepped < 20
    # the next run resumes after the last step, and the positions are the rolling protocol's
    days = sessions(START, "2019-02-28")
    with PaperSession.open(db) as session:
        run_loop(session, until=days[-1].date())
    assert check_invariants(db) == len(days)
    targets, _, _ = ledger_targets(db)
    np.testing.assert_allclose(targets, rolling_reference(maml_run, days), rtol=0, atol=1e-10)


def test_a_failure_inside_the_step_rolls_the_whole_step_back(
    ledgers: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, db = ledgers
    days = sessions(START, "2019-01-10")
    with PaperSession.open(db) as session:
        for day in days[:-1]:
            step(session, day.date())
    with Ledger.open(db) as ledger:
        before = ledger.dump()

    def crash(self: Ledger, values: dict[str, object]) -> None:
        raise OSError("disk gone")  # after the fills, marks, order and events were written

    with monkeypatch.context() as m:
        m.setattr(Ledger, "insert_step", crash)
        with PaperSession.open(db) as session, pytest.raises(OSError):
            step(session, days[-1].date())
    with Ledger.open(db) as ledger:
        assert ledger.dump() == before
    with PaperSession.open(db) as session:
        assert step(session, days[-1].date()).status == "stepped"
    assert check_invariants(db) == len(days)
