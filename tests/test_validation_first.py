"""Validation first: bad input is refused before any expensive step or any write.

No test times anything: the expensive steps are patched to raise ``AssertionError`` (which the
CLI does not turn into exit 2), so reaching one fails the test.
"""

from __future__ import annotations

import copy
import datetime as dt
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from market_metarl.cli import main
from market_metarl.types import ConfigError, DataError

MALFORMED = Path(__file__).parent / "fixtures" / "malformed"
SMALL_TOML = """
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
[features]
vol_window = 0
momentum_horizons = []
volume_window = 0
drawdown = false
[env]
window = 2
max_drawdown = 1.0
[train]
iterations = 2
checkpoint_every = 1
adapt_days = 10
"""


def never(what: str) -> Any:
    """A stand-in for an expensive step that fails the test when it is reached."""

    def reached(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what} was reached for bad input")

    return reached


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def write_config(tmp_path: Path, text: str = SMALL_TOML) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


# finite numbers


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_paper_init_refuses_non_finite_cash_before_anything(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("market_metarl.live.account.TrainedRun.open", never("the run"))
    db = tmp_path / "p.db"
    argv = ["paper", "init", "--db", str(db), "--run", "r", "--feed", "bundled:SPY"]
    assert main([*argv, "--cash", value]) == 2
    assert "--cash" in one_error(capsys) and not db.exists()


def test_init_account_refuses_infinite_cash(tmp_path: Path) -> None:
    from market_metarl.live.account import init_account

    with pytest.raises(ConfigError, match=r"paper.cash must be a finite number, got inf"):
        init_account(tmp_path / "p.db", "r", "bundled:SPY", cash=float("inf"))
    assert not (tmp_path / "p.db").exists()


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("costs", "borrow_bps_annual", "inf"),
        ("env", "max_leverage", "nan"),
        ("train", "outer_lr", "inf"),
    ],
)
def test_a_non_finite_config_number_is_refused_naming_the_field(
    table: str, key: str, value: str, tmp_path: Path
) -> None:
    from market_metarl.meta.experiment import Experiment

    text = SMALL_TOML.replace(f"[{table}]\n", f"[{table}]\n{key} = {value}\n", 1)
    with pytest.raises(ConfigError, match=rf"{table}.{key} must be a finite number"):
        Experiment.from_file(str(write_config(tmp_path, text)))


def test_a_non_finite_regimes_param_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["regimes", "bundled:SPY", "--method", "hmm", "--param", "n_states=inf"]
    assert main(argv) == 2
    assert "--param n_states must be a finite number" in one_error(capsys)


# train: checks first, no half-written run


def test_train_with_a_horizon_longer_than_every_task_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("market_metarl.meta.trainer.open_run", never("the run directory"))
    cfg = write_config(
        tmp_path, SMALL_TOML.replace("adapt_days = 10", "adapt_days = 10\nhorizon = 500")
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 2
    assert "decision days" in one_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("existed", [False, True])
def test_a_train_failing_before_its_first_checkpoint_leaves_no_run(
    existed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from market_metarl.meta import trainer
    from market_metarl.meta.experiment import Experiment

    def fail(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the first learner is being built

    monkeypatch.setattr(trainer, "build_learner", fail)
    out = tmp_path / "run"
    if existed:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        trainer.train(Experiment.from_file(str(write_config(tmp_path))), "maml", out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] if existed else not out.exists()


def test_a_future_test_split_is_refused_naming_it(tmp_path: Path) -> None:
    from market_metarl.data.tasks import taskset_from_config

    cfg = {
        "data": {"symbols": ["SPY"]},
        "regimes": {"method": "window"},
        "splits": {"train": ["2000-01-01", "2015-12-31"], "test": ["2031-01-01", "2032-12-31"]},
    }
    with pytest.raises(DataError, match=r"no test tasks.*splits.test \[2031-01-01"):
        taskset_from_config(copy.deepcopy(cfg))


# backtest and paper init read their inputs before opening the run


@pytest.mark.parametrize("name", sorted(p.name for p in MALFORMED.iterdir()))
def test_backtest_of_a_malformed_source_never_opens_the_run(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("market_metarl.backtest.runner.TrainedRun.open", never("the run"))
    out = tmp_path / "bt"
    argv = ["backtest", "--run", "r", "--data", f"csv:{MALFORMED / name}", "--out", str(out)]
    assert main(argv) == 2
    assert name in one_error(capsys) and not out.exists()


@pytest.mark.parametrize("option", ["--start", "--end"])
def test_backtest_refuses_an_ambiguous_date_before_opening_the_run(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("market_metarl.backtest.runner.TrainedRun.open", never("the run"))
    argv = ["backtest", "--run", "r", option, "01/02/2020", "--out", str(tmp_path / "bt")]
    assert main(argv) == 2
    assert "write YYYY-MM-DD" in one_error(capsys)


def test_paper_init_of_a_malformed_feed_never_opens_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("market_metarl.live.account.TrainedRun.open", never("the run"))
    db = tmp_path / "p.db"
    feed = f"csv:{MALFORMED / 'non_numeric.csv'}"
    assert main(["paper", "init", "--db", str(db), "--run", "r", "--feed", feed]) == 2
    assert "non-numeric" in one_error(capsys) and not db.exists()


# dates by a stated rule, and no warning beside the error line


def test_day_first_dates_are_decided_by_the_column_and_raise_no_warning(tmp_path: Path) -> None:
    from market_metarl.data.csvfile import read_csv_bars

    path = tmp_path / "d.csv"
    rows = ["Date,Open,High,Low,Close,Volume"]
    rows += [f"{d:02d}/01/2020,10,11,9,10.5,100" for d in range(2, 16)]
    path.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bars, _ = read_csv_bars(path)
    assert bars.index[-1] == pd.Timestamp("2020-01-15")


def test_warnings_are_held_back_when_a_command_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def noisy(source: str) -> None:
        warnings.warn("Parsing dates in %d/%m/%Y format", UserWarning, stacklevel=1)
        warnings.warn("invalid value encountered in divide", RuntimeWarning, stacklevel=1)
        raise DataError(f"{source}: bad")

    def to_stderr(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        print(f"{category.__name__}: {message}", file=sys.stderr)  # as Python prints them

    monkeypatch.setattr("market_metarl.data.sources.load_bars_with_report", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = to_stderr
        assert main(["data", "show", "csv:x.csv"]) == 2
    assert one_error(capsys) == "error: csv:x.csv: bad"


def test_ledger_create_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from market_metarl.live import ledger

    db = tmp_path / "p.db"

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ledger.os, "link", interrupted)
    account = _account()
    with pytest.raises(KeyboardInterrupt):
        ledger.Ledger.create(db, account)
    assert list(tmp_path.iterdir()) == []


def _account() -> Any:
    from market_metarl.live.schema import Account

    return Account(
        account_id="a",
        run_path="r",
        run_digest="d",
        config_digest="c",
        algo="maml",
        seed=0,
        symbol="SPY",
        feed="bundled:SPY",
        initial_cash=1000.0,
        adapt_days=10,
        every=5,
        settings="{}",
        origin=None,
        created=dt.datetime(2020, 1, 1, tzinfo=dt.UTC).isoformat(),
    )


def test_regimes_plot_is_whole_or_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from matplotlib.figure import Figure

    def half_then_full(self: Figure, fname: Path, **kwargs: object) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device", str(fname))

    monkeypatch.setattr(Figure, "savefig", half_then_full)
    plot = tmp_path / "r.png"
    assert main(["regimes", "bundled:SPY", "--method", "window", "--plot", str(plot)]) == 1
    assert "No space left on device" in one_error(capsys)
    assert list(tmp_path.iterdir()) == []


# regimes, data fetch, sweep and paper step/run/status: every command checks before it works


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--method", "hmm", "--param", "n_states=inf"], "--param n_states must be a finite"),
        (["--method", "window", "--param", "bogus=1"], "has no parameter(s) 'bogus'"),
        (["--method", "window", "--param", "trend_threshold=-1"], "non-negative number"),
        (["--method", "window", "--min-length", "1"], "min_length"),
        (["--method", "window", "--out", "missing/r.csv"], "--out: folder missing does not"),
        (["--method", "window", "--plot", "missing/r.png"], "--plot: folder missing does not"),
    ],
)
def test_regimes_checks_its_options_before_reading_the_source(
    options: list[str],
    words: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("market_metarl.data.sources.load_bars", never("reading the source"))
    assert main(["regimes", "bundled:SPY", *options]) == 2
    assert words in one_error(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["SPY", "--start", "01/02/2020"], "--start '01/02/2020' is not a date"),
        (["SPY", "--end", "2020-13-01"], "--end '2020-13-01' is not a date"),
        (["SPY", "--start", "2021-01-04", "--end", "2020-01-02"], "is after --end"),
        (["SPY", " "], "symbol ' ' is blank"),
    ],
)
def test_data_fetch_checks_symbols_and_dates_before_the_cache_or_the_network(
    argv: list[str],
    words: str,
    cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("market_metarl.data.yahoo.read_cache", never("the cache"))
    monkeypatch.setattr("market_metarl.data.yahoo._download", never("the download"))
    assert main(["data", "fetch", *argv]) == 2
    assert words in one_error(capsys) and not cache_dir.exists()


def test_sweep_checks_every_combination_before_training_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("market_metarl.meta.sweep._run_pieces", never("training a piece"))
    out = tmp_path / "sw"
    argv = ["sweep", "--config", str(write_config(tmp_path)), "--algo", "pooled"]
    assert main([*argv, "--grid", "train.horizon=5,500", "--out", str(out)]) == 2
    assert "--grid train.horizon=500" in one_error(capsys) and not out.exists()


@pytest.fixture
def stored_ledger(tmp_path: Path) -> Path:
    """A ledger of an account trading ``non_numeric.csv`` (a file that went bad after init)."""
    from dataclasses import replace

    from market_metarl.live.ledger import Ledger

    feed = f"csv:{MALFORMED / 'non_numeric.csv'}"
    db = tmp_path / "p.db"
    Ledger.create(db, replace(_account(), symbol="NON_NUMERIC", feed=feed)).close()
    return db


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["step", "--asof", "2019-03-01"], "non-numeric"),
        (["run", "--asof", "2019-03-01"], "non-numeric"),
        (["step", "--feed", "bundled:SPY"], "trades SPY but ledger"),
        (["run", "--feed", "bundled:SPY"], "trades SPY but ledger"),
        (["run", "--every", "-1"], "--every must be >= 0"),
        (["step", "--asof", "01/03/2019"], "--asof must be a date"),
    ],
)
def test_paper_step_and_run_check_the_feed_before_opening_the_run(
    argv: list[str],
    words: str,
    stored_ledger: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib

    monkeypatch.setattr("market_metarl.live.account.TrainedRun.open", never("the run"))
    before = hashlib.sha256(stored_ledger.read_bytes()).hexdigest()
    assert main(["paper", argv[0], "--db", str(stored_ledger), *argv[1:]]) == 2
    assert words in one_error(capsys)
    assert hashlib.sha256(stored_ledger.read_bytes()).hexdigest() == before


def test_paper_status_reads_the_ledger_alone(
    stored_ledger: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("market_metarl.live.account.TrainedRun.open", never("the run"))
    monkeypatch.setattr("market_metarl.live.feeds.load_bars", never("the feed"))
    assert main(["paper", "status", "--db", str(stored_ledger)]) == 0
    assert main(["paper", "status", "--db", str(stored_ledger.with_name("none.db"))]) == 2
    assert "no ledger at" in one_error(capsys)
