"""Bad input exits with 2 and one clear line, and writes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from live_helpers import cli

from market_metarl.data.sources import load_bars
from market_metarl.live.account import PaperSession, init_account
from market_metarl.live.step import step


def snapshot(folder: Path) -> dict[str, str]:
    """Every file of ``folder`` and a hash of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def stepped(maml_run: Path, tmp_path: Path) -> Path:
    """A ledger stepped through the first days of March 2019, in its own folder."""
    folder = tmp_path / "ledger"
    folder.mkdir()
    db = folder / "paper.db"
    init_account(db, maml_run, "bundled:SPY")
    with PaperSession.open(db) as session:
        for day in ("2019-03-01", "2019-03-04", "2019-03-05"):
            step(session, __import__("datetime").date.fromisoformat(day))
    return db


def test_unknown_run_creates_no_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "paper.db"
    code, _, err = cli(
        capsys, "paper", "init", "--run", str(tmp_path / "nope"), "--feed", "bundled:SPY",
        "--db", str(db),
    )  # fmt: skip
    assert code == 2
    assert "does not exist" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("feed", "words"),
    [("bundled:NOPE", "NOPE"), ("ftp:SPY", "unknown source kind"), ("csv:/no/file.csv", "file")],
)
def test_bad_feed_at_init_creates_no_ledger(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], feed: str, words: str
) -> None:
    db = tmp_path / "paper.db"
    code, _, err = cli(
        capsys, "paper", "init", "--run", str(maml_run), "--feed", feed, "--db", str(db)
    )
    assert code == 2
    assert words.lower() in one_error_line(err).lower()
    assert not db.exists()


def test_init_over_an_existing_ledger_changes_nothing(
    stepped: Path, maml_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(stepped.parent)
    code, _, err = cli(
        capsys, "paper", "init", "--run", str(maml_run), "--feed", "bundled:SPY",
        "--db", str(stepped),
    )  # fmt: skip
    assert code == 2 and "exists already" in one_error_line(err)
    assert snapshot(stepped.parent) == before


def test_a_ledger_from_another_run_is_refused(
    stepped: Path, rl2_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(stepped.parent)
    code, _, err = cli(
        capsys, "paper", "step", "--db", str(stepped), "--run", str(rl2_run), "--asof",
        "2019-03-06",
    )  # fmt: skip
    assert code == 2 and "belongs to the run" in one_error_line(err)
    assert snapshot(stepped.parent) == before


@pytest.mark.parametrize(
    ("asof", "words"),
    [
        ("2999-01-04", "in the future"),
        ("1995-01-03", "before the data"),
        ("2021-04-05", "stale"),  # the bundled data ends on 2021-03-31
        ("2019-07-04", "closed"),  # Independence Day
        ("2019-03-09", "closed"),  # a Saturday
        ("2019-13-01", "must be a date"),
    ],
)
def test_bad_asof_is_refused_and_writes_nothing(
    stepped: Path, capsys: pytest.CaptureFixture[str], asof: str, words: str
) -> None:
    before = snapshot(stepped.parent)
    code, _, err = cli(capsys, "paper", "step", "--db", str(stepped), "--asof", asof)
    assert code == 2
    assert words in one_error_line(err)
    assert snapshot(stepped.parent) == before


def test_too_little_history_for_the_first_adaptation(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "paper.db"
    init_account(db, maml_run, "bundled:SPY")
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", "1998-01-09")
    assert code == 2 and "adapts on the 10 days" in one_error_line(err)
    assert snapshot(tmp_path) == before


def write_csv(path: Path, drop: list[str]) -> Path:
    bars = load_bars("bundled:SPY").loc["2018-01-02":"2019-12-31"]
    bars = bars.drop(index=pd.DatetimeIndex(drop))  # KeyError if a date is not a bar
    bars.to_csv(path, index_label="date")
    return path


def test_a_gap_in_the_feed_is_refused_and_writes_nothing(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ledger"
    folder.mkdir()
    csv = write_csv(tmp_path / "spy.csv", drop=["2018-03-15", "2019-05-14"])
    db = folder / "paper.db"
    code, _, err = cli(
        capsys, "paper", "init", "--run", str(maml_run), "--feed", f"csv:{csv}", "--db", str(db)
    )
    assert code == 0, err
    # a gap long before the span a step reads does not matter
    code, _, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", "2019-05-01")
    assert code == 0, err
    code, _, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", "2019-05-02")
    assert code == 0, err
    before = snapshot(folder)
    # a missing session between the origin and the as-of date does
    code, _, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", "2019-05-16")
    assert code == 2
    line = one_error_line(err)
    assert "gap" in line and "2019-05-14" in line
    assert snapshot(folder) == before


def test_a_feed_of_another_symbol_is_refused(
    stepped: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(stepped.parent)
    code, _, err = cli(
        capsys, "paper", "step", "--db", str(stepped), "--feed", "bundled:QQQ", "--asof",
        "2019-03-06",
    )  # fmt: skip
    assert code == 2 and "trades QQQ" in one_error_line(err)
    assert snapshot(stepped.parent) == before


def test_no_ledger_and_a_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "paper", "status", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "paper init" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []
    other = tmp_path / "other.db"
    other.write_bytes(b"not a database at all" * 100)
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, "paper", "step", "--db", str(other), "--asof", "2019-03-06")
    assert code == 2 and "not a paper ledger" in one_error_line(err)
    assert snapshot(tmp_path) == before
