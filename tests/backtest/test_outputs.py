"""The backtest's output folder: the leftovers of a killed backtest are removed by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from market_metarl.backtest.outputs import remove_stale


def test_the_folders_a_killed_backtest_left_are_removed_and_no_others(tmp_path: Path) -> None:
    # a process that has exited (and been waited for): its pid names no process now
    ran = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead, alive = int(ran.stdout), os.getpid()
    names = [
        f".bt.partial-{dead}",
        f".bt.old-{dead}",
        f".bt.partial-{alive}",
        f".bt2.partial-{dead}",
    ]
    names += [".bt.notes-1", "bt"]
    for name in names:
        (tmp_path / name).mkdir()
    remove_stale(tmp_path / "bt")
    kept = [f".bt.partial-{alive}", f".bt2.partial-{dead}", ".bt.notes-1", "bt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
