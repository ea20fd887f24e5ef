"""The hostile-input corpus (``tests/fixtures/hostile/``) through ``data show``, ``backtest`` and
``paper init``: each file is accepted or refused as ``EXPECTED.csv`` says, with one ``error:``
line, and a refused file is refused before the run is opened (that step is patched to fail)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from market_metarl.cli import main

HOSTILE = Path(__file__).parents[1] / "fixtures" / "hostile"
RUN_OPENED = "run opened: the source was accepted"


def _cases() -> list[tuple[str, int, list[str]]]:
    with (HOSTILE / "EXPECTED.csv").open(newline="") as fh:
        return [
            (row["file"], int(row["exit"]), [w for w in row["words"].split("|") if w])
            for row in csv.DictReader(fh)
        ]


@pytest.fixture
def run_open_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TrainedRun.open`` (the expensive step: config, tasks, regimes) raises a known error."""
    from market_metarl.meta.run import TrainedRun
    from market_metarl.types import RunError

    def refuse(*args: object, **kwargs: object) -> TrainedRun:
        raise RunError(RUN_OPENED)

    monkeypatch.setattr(TrainedRun, "open", refuse)


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _commands(source: str, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "backtest": ["backtest", "--run", "r", "--data", source, "--out", str(tmp_path / "bt")],
        "paper init": [
            "paper",
            "init",
            "--db",
            str(tmp_path / "p.db"),
            "--run",
            "r",
            "--feed",
            source,
        ],
    }


@pytest.mark.parametrize(("name", "code", "words"), _cases(), ids=[c[0] for c in _cases()])
@pytest.mark.usefixtures("run_open_fails")
def test_each_hostile_file_is_accepted_or_refused_as_stated(
    name: str, code: int, words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"csv:{HOSTILE / name}"
    assert main(["data", "show", source]) == code
    if code:
        line = _one_error(capsys)
        assert all(w in line for w in words), line
    else:
        assert capsys.readouterr().err == ""
    for what, argv in _commands(source, tmp_path).items():
        assert main(argv) == 2, what
        line = _one_error(capsys)
        if code:  # refused before the run was opened, with the same message
            assert RUN_OPENED not in line and all(w in line for w in words), (what, line)
        else:
            assert RUN_OPENED in line, (what, line)
        assert not (tmp_path / "bt").exists() and not (tmp_path / "p.db").exists()


def _generated(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """The cases made here rather than stored: path and the words of their error."""
    import pandas as pd

    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    parquet = tmp_path / "bars.parquet"
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(parquet)
    return {
        "symlink loop": (loop, "broken or looping symlink"),
        "folder": (folder, "is a folder, not a file"),
        "parquet": (parquet, "a Parquet file is a binary file"),
    }


@pytest.mark.usefixtures("run_open_fails")
def test_generated_hostile_paths_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for case, (path, words) in _generated(tmp_path).items():
        for argv in [["data", "show", f"csv:{path}"], *_commands(f"csv:{path}", tmp_path).values()]:
            assert main(argv) == 2, (case, argv)
            line = _one_error(capsys)
            assert words in line and RUN_OPENED not in line, (case, line)


@pytest.mark.usefixtures("run_open_fails")
def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small stand-in for a 100 MB file: the limit is patched down to 100 bytes, and reading
    # the table is patched to fail, so the refusal provably comes before the read
    from market_metarl.data import csvfile

    monkeypatch.setattr(csvfile, "MAX_FILE_BYTES", 100)

    def no_read(*args: object) -> None:
        raise AssertionError("the oversized file was read")

    monkeypatch.setattr(csvfile, "_read_table", no_read)
    big = tmp_path / "big.csv"
    shutil.copy(HOSTILE / "crlf.csv", big)
    for argv in [["data", "show", f"csv:{big}"], *_commands(f"csv:{big}", tmp_path).values()]:
        assert main(argv) == 2
        assert "MiB a file of daily bars may have" in _one_error(capsys)


@pytest.mark.usefixtures("run_open_fails")
def test_a_100_mb_binary_file_is_refused_from_its_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 MB of NUL bytes (a sparse file: made in no time, taking no disk), under the size
    # limit: refused from its first 4 KiB, never read whole and never handed to pandas
    import pandas as pd

    big = tmp_path / "big.csv"
    with big.open("wb") as fh:
        fh.truncate(100 * 10**6)

    def whole(*args: object, **kwargs: object) -> None:
        raise AssertionError("the 100 MB file was read whole")

    monkeypatch.setattr(Path, "read_bytes", whole)
    monkeypatch.setattr(pd, "read_csv", whole)
    for argv in [["data", "show", f"csv:{big}"], *_commands(f"csv:{big}", tmp_path).values()]:
        assert main(argv) == 2, argv
        line = _one_error(capsys)
        assert "this is a binary file" in line and RUN_OPENED not in line, line
    assert not (tmp_path / "bt").exists() and not (tmp_path / "p.db").exists()


@pytest.mark.usefixtures("run_open_fails")
def test_a_cached_parquet_file_with_the_wrong_schema_is_refused(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the one Parquet file a source reads: the yfinance cache, here with other columns
    import pandas as pd

    from market_metarl.data.yahoo import cache_path

    cached = cache_path("SPY")
    cached.parent.mkdir(parents=True)
    pd.DataFrame({"x": [1.0, 2.0], "when": ["a", "b"]}).to_parquet(cached)
    source = "yfinance:SPY?offline=1"
    for argv in [["data", "show", source], *_commands(source, tmp_path).values()]:
        assert main(argv) == 2, argv
        line = _one_error(capsys)
        assert "missing column(s) open, high, low, close (found x, when)" in line, line
        assert RUN_OPENED not in line
    assert not (tmp_path / "bt").exists() and not (tmp_path / "p.db").exists()


class Evil:
    """Unpickling this opens (creates) a file: what a hostile checkpoint would do."""

    marker = ""

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_unpickles_a_class_is_refused_and_runs_nothing(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    run = tmp_path / "run"
    shutil.copytree(maml_run, run)
    marker = tmp_path / "pwned"
    evil = Evil()
    evil.marker = str(marker)
    torch.save({"format": 2, "agent": evil}, run / "checkpoints" / "maml.pt")
    argvs = [
        ["backtest", "--run", str(run), "--out", str(tmp_path / "bt")],
        [
            "paper",
            "init",
            "--db",
            str(tmp_path / "p.db"),
            "--run",
            str(run),
            "--feed",
            "bundled:SPY",
        ],
    ]
    for argv in argvs:
        assert main(argv) == 2
        assert "not a market_metarl checkpoint" in _one_error(capsys)
        assert not marker.exists()
    assert not (tmp_path / "bt").exists() and not (tmp_path / "p.db").exists()
