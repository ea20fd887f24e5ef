"""The command line: output of the data commands, one-line errors with exit code 2, fast start."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from market_metarl.cli import EXIT_BAD_INPUT, EXIT_OK, UsageError, main
from market_metarl.data import yahoo

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
YAHOO = FIXTURES / "layouts" / "yahoo_spy.csv"
STOOQ = FIXTURES / "layouts" / "stooq_spy.txt"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "market_metarl", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: market-metarl" in out
    assert "data" in out and "regimes" in out


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from market_metarl import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"market-metarl {__version__}\n"


def _never_built(ctx: Any) -> Any:
    raise AssertionError("parsing never builds a learner")


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_algo_choices_are_the_registrys_at_parse_time(command: str) -> None:
    from market_metarl.cli import build_parser
    from market_metarl.meta.registry import Algorithm, algorithm_names, register, unregister

    parser = build_parser()  # built before the plug-in registers: choices are read when parsing
    base = [command, "--config", "c.toml", "--out", "o"]
    assert set(algorithm_names()) >= {"maml", "rl2", "rl2_ppo", "pooled", "model_based", "pearl"}
    for name in algorithm_names():
        assert parser.parse_args([*base, "--algo", name]).algo == name
    with pytest.raises(UsageError, match=r"invalid choice: 'toy'.*'pearl'"):
        parser.parse_args([*base, "--algo", "toy"])
    register(Algorithm("toy", config=object, build=_never_built))
    try:
        assert parser.parse_args([*base, "--algo", "toy"]).algo == "toy"
    finally:
        unregister("toy")


def test_data_show_yahoo_prints_rows_and_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "data", "show", f"csv:{YAHOO}")
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert "rows     8" in lines
    assert "first    2020-09-01" in lines
    assert "last     2020-09-11" in lines
    assert "close 331.3158" in out  # Adj Close of 2020-09-11
    assert "layout: yahoo" in out


def test_data_show_stooq_prints_rows_and_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "show", f"csv:{STOOQ}")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert "rows     7" in lines
    assert "first    2020-09-01" in lines
    assert "last     2020-09-10" in lines
    assert "close 311.7960" in out
    assert "layout: stooq" in out


def test_data_show_reports_split_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "oddities" / "aapl_unadjusted_split.csv"
    code, out, _ = run(capsys, "data", "show", f"csv:{path}")
    assert code == EXIT_OK
    assert any(line.startswith("warning") and "2020-08-31" in line for line in out.splitlines())


def test_data_show_clean_source_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "show", "synthetic:gbm?seed=1&days=30")
    assert code == EXIT_OK
    assert "rows     30" in out and "valid    no problems found" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["data", "list", "--bogus"], "unrecognized arguments: --bogus", id="option"),
        pytest.param(["dta", "list"], "invalid choice: 'dta'", id="subcommand"),
        pytest.param(["data", "show"], "required: source", id="missing-arg"),
        pytest.param(["data", "show", "csv:no/such.csv"], "no such file", id="missing-file"),
        pytest.param(
            ["data", "show", f"csv:{FIXTURES / 'malformed' / 'high_below_low.csv'}"],
            "high < low on 2020-09-04",
            id="malformed-csv",
        ),
        pytest.param(["data", "show", "ftp:SPY"], "unknown source kind 'ftp'", id="source-kind"),
        pytest.param(["data", "show", "SPY"], "has no kind", id="bare-source"),
        pytest.param(
            ["regimes", "synthetic:gbm?seed=1", "--method", "astrology"],
            "invalid choice: 'astrology'",
            id="regime-method",
        ),
        pytest.param(
            ["regimes", "synthetic:gbm?seed=1", "--method", "window", "--param", "length"],
            "must look like key=value",
            id="bad-param",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert err.startswith("error: ") and err.endswith("\n")
    assert err.count("\n") == 1, err
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus", "data", "list"], "unrecognized arguments: --bogus"),
        (["data", "show", f"csv:{FIXTURES / 'malformed' / 'nan_hole.csv'}"], "2020-09-03"),
        (["regimes", "synthetic:gbm?seed=1", "--method", "astrology"], "invalid choice"),
    ],
)
def test_process_exit_code_2_and_a_single_stderr_line(argv: list[str], message: str) -> None:
    proc = run_process(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in lines[0]


class FakeDownload:
    """``yfinance.download`` stand-in: serves a few SPY/QQQ bars, or nothing when offline."""

    def __init__(self) -> None:
        self.offline = False
        self.calls: list[dict[str, Any]] = []
        self.sleeps: list[float] = []

    def __call__(self, tickers: list[str], **kwargs: Any) -> pd.DataFrame:
        self.calls.append({"tickers": list(tickers), **kwargs})
        if self.offline:
            return pd.DataFrame()
        index = pd.bdate_range("2024-03-01", periods=5, name="Date")
        close = np.array([100.0, 101.0, 102.0, 101.5, 103.0])
        one = pd.DataFrame(
            {"Open": close, "High": close + 1, "Low": close - 1, "Close": close, "Volume": 1e6},
            index=index,
        )
        out = pd.concat({t: one for t in tickers}, axis=1)
        out.columns.names = ["Ticker", "Price"]
        return out


@pytest.fixture
def fake_yf(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> FakeDownload:
    import yfinance

    fake = FakeDownload()
    monkeypatch.setattr(yfinance, "download", fake)
    # The CLI retries with real sleeps; keep its behaviour but not its waiting.
    fetch = functools.partial(yahoo.fetch_yfinance, sleep=fake.sleeps.append)
    monkeypatch.setattr(yahoo, "fetch_yfinance", fetch)
    return fake


def test_data_fetch_writes_the_cache_and_data_list_shows_it(
    capsys: pytest.CaptureFixture[str], fake_yf: FakeDownload, cache_dir: Path
) -> None:
    code, out, err = run(capsys, "data", "fetch", "SPY", "qqq", "--start", "2024-01-01")
    assert (code, err) == (EXIT_OK, "")
    assert len(fake_yf.calls) == 1 and fake_yf.calls[0]["start"] == "2024-01-01"
    assert (cache_dir / "yfinance" / "SPY_1d_adj.parquet").is_file()
    assert (cache_dir / "yfinance" / "QQQ_1d_adj.parquet").is_file()
    assert "SPY: 5 rows 2024-03-01 .. 2024-03-07" in out

    code, out, _ = run(capsys, "data", "list")
    assert code == EXIT_OK
    assert "bundled:SPY" in out
    assert "yfinance:SPY" in out and "yfinance:QQQ" in out


def test_data_fetch_offline_is_exit_2_naming_the_symbol(
    capsys: pytest.CaptureFixture[str], fake_yf: FakeDownload
) -> None:
    fake_yf.offline = True
    code, out, err = run(capsys, "data", "fetch", "SPY")
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err.startswith("error: ") and err.count("\n") == 1
    assert len(fake_yf.calls) == 3 and fake_yf.sleeps == [1.0, 2.0]
    assert "SPY" in err and "no cached copy exists" in err


def test_data_list_shows_every_bundled_symbol(
    capsys: pytest.CaptureFixture[str], cache_dir: Path
) -> None:
    code, out, _ = run(capsys, "data", "list")
    assert code == EXIT_OK
    manifest = pd.read_csv(REPO / "data" / "MANIFEST.csv")
    for symbol in manifest["symbol"]:
        assert f"bundled:{symbol}" in out
    assert "yfinance:" not in out


def test_regimes_writes_csv_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_csv, out_png = tmp_path / "F.csv", tmp_path / "F.png"
    code, out, err = run(
        capsys,
        "regimes",
        "synthetic:gbm?seed=1&days=600",
        "--method",
        "window",
        "--out",
        str(out_csv),
        "--plot",
        str(out_png),
    )
    assert (code, err) == (EXIT_OK, "")
    frame = pd.read_csv(out_csv)
    assert list(frame.columns[:5]) == ["symbol", "start", "end", "label", "method"]
    assert (frame["method"] == "window").all()
    assert frame["start"].iloc[0] == "2000-01-03"
    assert int(frame["days"].sum()) == 600
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "window" in out


def test_regimes_out_into_missing_folder_is_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "nope" / "F.csv"
    code, _, err = run(
        capsys,
        "regimes",
        "synthetic:gbm?seed=1&days=300",
        "--method",
        "window",
        "--out",
        str(target),
    )
    assert code == EXIT_BAD_INPUT
    assert "does not exist" in err and not target.exists()


HEAVY = ("pandas", "numpy", "torch", "matplotlib", "backtrader", "yfinance")


def test_importing_the_cli_and_asking_for_help_loads_no_heavy_library() -> None:
    probe = (
        "import contextlib, io, json, sys\n"
        "import market_metarl.cli as cli\n"
        f"heavy = {HEAVY!r}\n"
        "seen = [[m for m in heavy if m in sys.modules]]\n"
        "for argv in (['--help'], ['--version'], ['data', 'list'], ['train', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            cli.main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    seen.append([m for m in heavy if m in sys.modules])\n"
        "print(json.dumps(seen))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    after_import, after_help, after_version, after_list, after_train_help = json.loads(proc.stdout)
    assert after_import == [], f"`import market_metarl.cli` loads {after_import}"
    assert after_help == [], f"`market-metarl --help` loads {after_help}"
    assert after_version == [], f"`market-metarl --version` loads {after_version}"
    assert after_list == [], f"`market-metarl data list` loads {after_list}"
    # `train --help` lists the registry's algorithms: the registry imports pandas, never torch
    assert "torch" not in after_train_help, f"`train --help` loads {after_train_help}"
