"""Faults other than kills: a full disk (a writer patched to raise ENOSPC, or SQLite's own
"database or disk is full"), a ledger truncated or replaced by garbage, and two ``paper step``
processes at once."""

from __future__ import annotations

import errno
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_helpers import TRAIN, check_ledger

from market_metarl.cli import main
from market_metarl.live.ledger import Ledger

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


def sqlite_full(self: Ledger, values: dict[str, object]) -> None:
    """The step's last write on a disk with no room left: SQLite's own ``SQLITE_FULL``.

    The file is capped at its current size (``max_page_count``, this connection only) and the
    real writer records a row that needs a new page: SQLite raises "database or disk is full" and
    rolls the transaction back itself, as it does when the disk is full.
    """
    pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
    self.conn.execute(f"PRAGMA max_page_count = {pages}")
    INSERT_STEP(self, {**values, "recorded_at": "x" * 65536})


def enospc(self: Ledger, values: dict[str, object]) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", str(self.path))


INSERT_STEP = Ledger.insert_step


@pytest.mark.parametrize(
    ("writer", "words"),
    [(sqlite_full, "database or disk is full"), (enospc, "No space left on device")],
    ids=["sqlite-full", "enospc"],
)
def test_a_full_disk_during_paper_step_changes_nothing_and_the_rerun_trades_once(
    writer: Callable[..., None],
    words: str,
    ledger: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = ledger.with_name("ref.db")
    shutil.copy(ledger, ref)  # the same account, stepped with room to spare
    days = ("2019-03-01", "2019-03-04", "2019-03-05")
    for db in (ledger, ref):
        assert main(["paper", "step", "--db", str(db), "--asof", days[0]]) == 0
    assert main(["paper", "step", "--db", str(ref), "--asof", days[1]]) == 0
    with Ledger.open(ledger) as led:
        before = led.dump()
    capsys.readouterr()
    with monkeypatch.context() as m:
        m.setattr(Ledger, "insert_step", writer)  # after the fills, marks and order were written
        assert main(["paper", "step", "--db", str(ledger), "--asof", days[1]]) == 1
    assert words in one_error(capsys)
    check_ledger(ledger)
    with Ledger.open(ledger) as led:
        assert led.dump() == before  # the whole step rolled back: no order, no mark, no step
    # space is back: the same command steps the day, once; a third run finds it done
    for _ in range(2):
        assert main(["paper", "step", "--db", str(ledger), "--asof", days[1]]) == 0
    check_ledger(ledger)
    with Ledger.open(ledger) as led, Ledger.open(ref) as want:
        assert led.dump(("recorded_at",)) == want.dump(("recorded_at",))
        assert len([o for o in led.dump()["orders"] if days[1].replace("-", "") in o[0]]) == 1
