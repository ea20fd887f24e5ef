"""Ledger schema migrations: a ledger written by the version-1 code keeps every row, and trades on."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from live_helpers import check_invariants, cli

from market_metarl.live import migrations
from market_metarl.live.ledger import Ledger
from market_metarl.live.migrations import MIGRATIONS, migrate
from market_metarl.live.schema import SCHEMA_VERSION
from market_metarl.types import RunError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ledger_v1"
V1_TABLES = list(json.loads((FIXTURE / "dump.json").read_text()))
"""The tables of a version-1 ledger (later versions add tables, never drop one)."""


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the committed version-1 ledger (the fixture itself is never opened)."""
    db = tmp_path / "paper.sqlite"
    shutil.copyfile(FIXTURE / "paper.sqlite", db)
    return db


def raw_dump(db: Path) -> dict[str, list[list[Any]]]:
    """Every v1 table's rows, sorted as ``Ledger.dump`` sorts them, read without migrating."""
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        out = {}
        for table in V1_TABLES:
            rows = sorted(conn.execute(f"SELECT * FROM {table}"), key=repr)
            out[table] = [list(r) for r in rows]
        return out
    finally:
        conn.close()


def fixture_dump() -> dict[str, list[list[Any]]]:
    """The dump the version-1 code took of the fixture (``dump.json``)."""
    return json.loads((FIXTURE / "dump.json").read_text())


def version_of(db: Path) -> tuple[int, str]:
    """``(PRAGMA user_version, meta.schema_version)`` of ``db``, read without migrating."""
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        user = conn.execute("PRAGMA user_version").fetchone()[0]
        meta = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        return int(user), str(meta)
    finally:
        conn.close()


def structure(db: Path) -> dict[str, Any]:
    """Tables, columns, indexes and version of ``db``: what must not depend on how it was made."""
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        names = conn.execute(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
        out: dict[str, Any] = {"objects": names, "version": version_of(db)}
        for _, name, table in names:
            out[name] = conn.execute(f"PRAGMA table_info({name})").fetchall()
            out[f"{name} indexes"] = conn.execute(f"PRAGMA index_list({table})").fetchall()
            out[f"{name} keys"] = conn.execute(f"PRAGMA foreign_key_list({table})").fetchall()
        return out
    finally:
        conn.close()


def test_the_fixture_is_a_version_1_ledger_as_todays_users_have(v1: Path) -> None:
    assert version_of(v1) == (0, "1")
    assert raw_dump(v1) == fixture_dump()


def test_migrating_the_v1_fixture_keeps_every_row_of_every_table(v1: Path) -> None:
    done = migrate(v1)
    assert (done.from_version, done.to_version) == (1, SCHEMA_VERSION)
    assert [v for v, _ in done.applied] == list(range(2, SCHEMA_VERSION + 1))
    assert done.backup == Path(f"{v1}.v1.bak")
    assert version_of(v1) == (SCHEMA_VERSION, str(SCHEMA_VERSION))

    with Ledger.open(v1) as ledger:
        dump = ledger.dump()
        history = ledger.schema_history()
    want = fixture_dump()
    want["meta"] = [["kind", "market_metarl.paper-ledger"], ["schema_version", str(SCHEMA_VERSION)]]
    assert {t: [list(r) for r in dump[t]] for t in V1_TABLES} == want
    created = want["account"][0][-1]
    assert history[0] == (1, "ledger created", created)
    assert [h[0] for h in history] == list(range(1, SCHEMA_VERSION + 1))

    # version 4 recorded the one-symbol account's symbol; its multi-asset tables start empty
    account = want["account"][0]
    assert [list(r) for r in dump["account_symbols"]] == [[0, account[7], account[8]]]
    assert dump["step_symbols"] == dump["shadow_positions"] == []

    # the copy taken before is the untouched version-1 ledger
    assert version_of(done.backup) == (0, "1")
    assert raw_dump(done.backup) == fixture_dump()
    assert sorted(p.name for p in v1.parent.iterdir()) == ["paper.sqlite", "paper.sqlite.v1.bak"]


def test_a_migrated_ledger_has_exactly_the_schema_of_a_new_one(v1: Path, tmp_path: Path) -> None:
    migrate(v1, backup=False)
    with Ledger.open(v1) as ledger:
        account = ledger.account()
    fresh = tmp_path / "fresh.sqlite"
    Ledger.create(fresh, account).close()
    assert structure(v1) == structure(fresh)
    with Ledger.open(fresh) as ledger:
        assert ledger.schema_history() == [(SCHEMA_VERSION, "ledger created", account.created)]


def test_the_registry_reaches_the_schema_version_one_step_at_a_time() -> None:
    assert [m[0] for m in MIGRATIONS] == list(range(2, SCHEMA_VERSION + 1))
    assert all(isinstance(m[1], str) and m[1] and callable(m[2]) for m in MIGRATIONS)


def test_opening_an_old_ledger_migrates_it_with_one_log_line_then_it_steps(
    v1: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="market_metarl"), Ledger.open(v1) as ledger:
        assert ledger.last_step() is not None
    notes = [r for r in caplog.records if r.name == migrations.__name__]
    assert len(notes) == 1 and f"from schema version 1 to {SCHEMA_VERSION}" in notes[0].getMessage()
    assert Path(f"{v1}.v1.bak").is_file()

    code, out, err = cli(capsys, "paper", "status", "--db", str(v1), "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["schema"]["version"] == SCHEMA_VERSION
    assert [h["version"] for h in status["schema"]["history"]] == list(range(1, SCHEMA_VERSION + 1))
    assert status["last_step_date"] == "2019-01-31"
    code, out, err = cli(
        capsys, "paper", "step", "--db", str(v1), "--run", str(FIXTURE / "run"), "--json",
        "--asof", "2019-02-01",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "stepped"
    assert check_invariants(v1) == 22


def test_the_cli_notes_an_automatic_migration_on_stderr(
    v1: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "paper", "status", "--db", str(v1), "--json")
    assert code == 0, err
    json.loads(out)  # stdout holds the JSON alone
    assert err.count("\n") == 1 and err.startswith("note: migrated ledger")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_ledger_newer_than_the_code_is_refused_untouched(
    v1: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(v1)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = digest(v1)
    with pytest.raises(RunError, match=r"newer than this market_metarl.*upgrade market_metarl"):
        Ledger.open(v1)
    for argv in (["status"], ["migrate"]):
        code, out, err = cli(capsys, "paper", *argv, "--db", str(v1))
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "upgrade market_metarl" in err
    assert digest(v1) == before
    assert [p.name for p in v1.parent.iterdir()] == ["paper.sqlite"]


def test_migrate_cli_json_then_a_second_run_does_nothing(
    v1: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "paper", "migrate", "--db", str(v1), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc == {
        "db": str(v1),
        "from_version": 1,
        "to_version": SCHEMA_VERSION,
        "applied": [{"version": v, "description": d} for v, d, _ in MIGRATIONS],
        "backup": f"{v1}.v1.bak",
    }
    code, out, err = cli(capsys, "paper", "migrate", "--db", str(v1), "--json")
    assert code == 0, err
    assert json.loads(out)["applied"] == [] and json.loads(out)["backup"] is None
    code, out, err = cli(capsys, "paper", "migrate", "--db", str(v1))
    assert code == 0 and "already" in out


def test_no_backup_writes_no_copy_and_a_taken_name_is_never_overwritten(
    v1: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.sqlite"
    shutil.copyfile(v1, other)
    assert migrate(v1, backup=False).backup is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite", "paper.sqlite"]

    taken = Path(f"{other}.v1.bak")
    taken.write_text("an older copy the user keeps")
    assert migrate(other).backup == Path(f"{other}.v1.2.bak")
    assert taken.read_text() == "an older copy the user keeps"
    assert raw_dump(Path(f"{other}.v1.2.bak")) == fixture_dump()


@pytest.mark.parametrize("content", ["not a database\n", "", "sqlite-without-meta"])
def test_migrate_cli_on_a_non_ledger_is_one_error_line_and_nothing_written(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.sqlite"
    if content == "sqlite-without-meta":
        sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    else:
        db.write_text(content)
    before = digest(db)
    for path in (db, tmp_path / "missing.sqlite", tmp_path):
        code, out, err = cli(capsys, "paper", "migrate", "--db", str(path), "--json")
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("error: "), err
    assert digest(db) == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.sqlite"]


def _broken(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE half (x)")
    conn.execute("DELETE FROM steps")
    conn.execute("SELECT * FROM no_such_table")


def test_a_failing_migration_leaves_the_ledger_as_it_was(
    v1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", ((2, "broken", _broken),))
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 2)
    with pytest.raises(RunError, match=r"to schema version 2 failed.*left at version 1.*v1\.bak"):
        migrate(v1)
    assert version_of(v1) == (0, "1")
    assert raw_dump(v1) == fixture_dump()
    assert "half" not in structure(v1)


def _next_broker_orders(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE broker_orders (client_id TEXT PRIMARY KEY, broker_id TEXT)")


def test_an_appended_migration_runs_after_the_earlier_ones(
    v1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What adding a table for a broker does: append an entry, bump the version."""
    nxt = SCHEMA_VERSION + 1
    monkeypatch.setattr(
        migrations, "MIGRATIONS", (*MIGRATIONS, (nxt, "broker orders", _next_broker_orders))
    )
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", nxt)
    done = migrate(v1)
    assert [v for v, _ in done.applied] == list(range(2, nxt + 1)) and done.to_version == nxt
    assert version_of(v1) == (nxt, str(nxt))
    assert "broker_orders" in structure(v1)
    assert raw_dump(v1) | {"meta": fixture_dump()["meta"]} == fixture_dump()
