"""Faults other than kills: a full disk (a writer patched to raise ENOSPC), a ledger truncated or
replaced by garbage, and two ``paper step`` processes at once."""

from __future__ import annotations

import errno
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from fault_helpers import TRAIN, check_ledger

from market_metarl.cli import main

pytestmark = pytest.mark.faults


def disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", "checkpoint")


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``error:`` line, last on stderr (after progress bars, if any) and no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    assert [e for e in err if "error" in e.lower()] == err[-1:], err
    assert err[-1].startswith("error: ") and "Traceback" not in "".join(err), err
    return err[-1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_full_disk_at_the_first_checkpoint_leaves_no_run(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.setattr("market_metarl.meta.trainer.save_checkpoint", disk_full)
    assert main([*TRAIN, "--out", "full-disk-run"]) == 1
    assert "No space left on device" in one_error(capsys)
    assert not (workdir / "full-disk-run").exists()


def test_a_full_disk_while_writing_a_backtest_keeps_the_earlier_one(
    workdir: Path,
    trained: tuple[Path, float],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["backtest", "--run", str(trained[0]), "--data", "bundled:SPY", "--protocol"]
    argv += ["rolling", "--start", "2019-01-02", "--end", "2019-02-28", "--out"]
    out = workdir / "bt-disk"
    assert main([*argv, str(out)]) == 0
    before = {p.name: digest(p) for p in out.iterdir()}
    monkeypatch.setattr("market_metarl.backtest.report.write_report", disk_full)
    assert main([*argv, str(out), "--seeds", "2"]) == 1
    assert "No space left on device" in one_error(capsys)
    assert {p.name: digest(p) for p in out.iterdir()} == before  # the earlier one, unchanged
    assert sorted(p.name for p in workdir.iterdir() if "bt-disk" in p.name) == ["bt-disk"]


@pytest.fixture
def ledger(workdir: Path, trained: tuple[Path, float], tmp_path: Path) -> Path:
    """A fresh ledger of the tiny run, in its own folder."""
    db = tmp_path / "paper.db"
    assert (
        main(["paper", "init", "--db", str(db), "--run", str(trained[0]), "--feed", "bundled:SPY"])
        == 0
    )
    return db


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_ledger_is_refused_untouched_naming_a_backup(
    damage: str, ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ledger.read_bytes()
    ledger.write_bytes(data[:3000] if damage == "truncated" else b"\x13garbage" * 700)
    before = digest(ledger)
    capsys.readouterr()
    for argv in (
        ["step", "--asof", "2019-03-01"],
        ["status"],
        ["reset"],
        ["run", "--asof", "2019-03-05"],
    ):
        assert main(["paper", argv[0], "--db", str(ledger), *argv[1:]]) == 2
        line = one_error(capsys)
        assert "is not a paper ledger" in line and f"{ledger}.bak" in line, line
        assert digest(ledger) == before  # nothing overwritten
    assert sorted(p.name for p in ledger.parent.iterdir()) == ["paper.db"]


def test_two_paper_steps_at_once_never_both_trade(ledger: Path) -> None:
    argv = [sys.executable, "-m", "market_metarl", "paper", "step", "--db", str(ledger)]
    argv += ["--asof", "2019-03-01", "--json"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    statuses = sorted(out.strip().splitlines()[-1] for out, _ in results)
    assert sum('"status": "stepped"' in s for s in statuses) == 1, statuses
    check_ledger(ledger)
