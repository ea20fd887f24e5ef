"""``--json`` on every command: one JSON object with documented keys on stdout, text on stderr."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from market_metarl.cli import main
from market_metarl.meta.rundir import write_toml

FIXTURES = Path(__file__).resolve().parent / "fixtures"

CONFIG: dict[str, Any] = {
    "data": {"symbols": ["synthetic:ar-regimes?seed=1&tasks=60&days=71"], "warmup_days": 2},
    "regimes": {"method": "known", "min_task_days": 71},
    "splits": {
        "train": ["2000-01-01", "2009-12-31"],
        "test": ["2010-03-01", "2019-12-31"],
        "embargo_days": 20,
    },
    "costs": {"fee_bps": 1.0, "slippage_bps": 2.0},
    "features": {"vol_window": 0, "momentum_horizons": [], "volume_window": 0, "drawdown": False},
    "env": {"window": 2, "action": "continuous", "max_drawdown": 1.0},
    "train": {"iterations": 3, "checkpoint_every": 3, "adapt_days": 10},
}
"""A tiny synthetic task family (as the paper-trading tests use): trains in seconds."""


def json_run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, Any], str]:
    """Run ``market-metarl ARGV --json``: the one JSON object on stdout, and stderr."""
    capsys.readouterr()
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.count("\n") == 1, out  # one object, one line
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc, err


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "small.toml"
    write_toml(path, CONFIG)
    return path


@pytest.fixture(scope="module")
def trained(config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A tiny MAML run trained through ``train --json``, and the JSON it printed."""
    run = tmp_path_factory.mktemp("runs") / "maml"
    out, err = io.StringIO(), io.StringIO()  # capsys is per test; this fixture is per module
    with redirect_stdout(out), redirect_stderr(err):
        code = main(
            ["train", "--config", str(config), "--algo", "maml", "--out", str(run), "--json"]
        )
    assert code == 0, err.getvalue()
    assert "run written to" in err.getvalue() and out.getvalue().count("\n") == 1
    return run, json.loads(out.getvalue())


def test_train_json_has_the_run_its_budget_time_and_final_metrics(
    trained: tuple[Path, dict[str, Any]],
) -> None:
    run, doc = trained
    assert set(doc) == {
        "run_dir",
        "algo",
        "seed",
        "iterations",
        "seconds",
        "train_tasks",
        "test_tasks",
        "metrics",
    }
    assert doc["run_dir"] == str(run) and doc["algo"] == "maml" and doc["seed"] == 0
    assert doc["iterations"] == {"maml": 3, "pooled": 3}
    assert doc["seconds"] > 0 and doc["train_tasks"] > 0 and doc["test_tasks"] > 0
    # the metrics of the last iteration, as metrics.csv has them
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    want: dict[str, dict[str, float]] = {}
    for learner, _, metric, value in rows:
        want.setdefault(learner, {})[metric] = float(value)
    assert doc["metrics"] == want and set(want) == {"maml", "pooled"}


def test_backtest_json_has_its_folder_and_each_strategys_figures(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained
    out = tmp_path / "bt"
    # a few weeks of SPY: fast, and every strategy still trades
    doc, err = json_run(
        capsys, "backtest", "--run", str(run), "--out", str(out), "--protocol", "rolling",
        "--data", "bundled:SPY", "--start", "2019-01-02", "--end", "2019-02-15", "--every", "10",
    )  # fmt: skip
    assert "backtest written to" in err
    assert set(doc) == {
        "out", "report", "metrics_file", "run", "algo", "data", "protocol", "adapt_days", "every",
        "horizon", "symbols", "strategies",
    }  # fmt: skip
    assert (doc["protocol"], doc["every"], doc["symbols"]) == ("rolling", 10, ["SPY"])
    assert doc["out"] == str(out) and Path(doc["report"]).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert doc["strategies"] == metrics["strategies"]
    assert {"adapted", "pooled", "buy_and_hold"} <= set(doc["strategies"])


def test_sweep_json_has_one_row_per_setting_best_first(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    doc, err = json_run(
        capsys, "sweep", "--config", str(config), "--algo", "maml", "--iterations", "2",
        "--grid", "hidden=8,16", "--out", str(out),
    )  # fmt: skip
    assert "table written to" in err
    assert set(doc) == {"out", "table", "algo", "split", "ran", "skipped", "rows"}
    assert (doc["ran"], doc["skipped"], doc["split"]) == (2, 0, "test")
    assert [r["rank"] for r in doc["rows"]] == [1, 2]
    assert sorted(r["settings"]["train.hidden"] for r in doc["rows"]) == [8, 16]
    row_keys = {"rank", "combo", "settings", "seeds", "tasks", "score", "ci_low", "ci_high"}
    assert all(row_keys | {"zero_shot", "gain"} == set(r) for r in doc["rows"])
    assert doc["rows"][0]["score"] >= doc["rows"][1]["score"]
    assert Path(doc["table"]).is_file()


def test_data_show_json_has_rows_dates_columns_and_the_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = f"csv:{FIXTURES / 'layouts' / 'yahoo_spy.csv'}"
    doc, err = json_run(capsys, "data", "show", source)
    assert set(doc) == {
        "source",
        "rows",
        "first",
        "last",
        "columns",
        "last_bar",
        "notes",
        "warnings",
    }
    assert (doc["source"], doc["rows"]) == (source, 8)
    assert (doc["first"], doc["last"]) == ("2020-09-01", "2020-09-11")
    assert doc["columns"][:5] == ["open", "high", "low", "close", "volume"]
    assert set(doc["last_bar"]) == {"open", "high", "low", "close", "volume"}
    assert doc["last_bar"]["close"] == pytest.approx(331.3158, abs=1e-4)  # Adj Close, 09-11
    assert "rows     8" in err  # the text went to stderr


def test_regimes_json_lists_the_segments(capsys: pytest.CaptureFixture[str]) -> None:
    doc, err = json_run(capsys, "regimes", "synthetic:gbm?seed=1&days=600", "--method", "window")
    assert set(doc) == {"source", "method", "out", "plot", "regimes"}
    assert doc["method"] == "window" and doc["out"] is None
    assert doc["regimes"][0]["start"] == "2000-01-03"
    assert set(doc["regimes"][0]) == {"symbol", "start", "end", "label", "method", "days"}
    assert sum(r["days"] for r in doc["regimes"]) == 600
    assert "window" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "show", "csv:no/such/file.csv"],
        ["regimes", "csv:no/such/file.csv", "--method", "window"],
        ["train", "--config", "no/such.toml", "--out", "never"],
        ["sweep", "--config", "no/such.toml", "--out", "never"],
        ["backtest", "--run", "no/such/run", "--out", "never"],
    ],
)
def test_errors_under_json_stay_one_error_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_the_json_helper_writes_numpy_scalars_as_numbers_and_non_finite_as_null(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import numpy as np

    from market_metarl.cli._common import print_json

    print_json(
        {
            "nan": float("nan"),
            "inf": np.float32("inf"),
            "f32": np.float32(0.5),
            "i64": np.int64(3),
            "flag": np.bool_(True),
            "nested": [(1, np.float64(-np.inf)), {2: "two"}],
            "path": Path("a/b"),
        }
    )
    out = capsys.readouterr().out
    assert "NaN" not in out and "Infinity" not in out
    assert json.loads(out) == {
        "nan": None,
        "inf": None,
        "f32": 0.5,
        "i64": 3,
        "flag": True,
        "nested": [[1, None], {"2": "two"}],
        "path": "a/b",
    }
