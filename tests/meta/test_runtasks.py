"""A run records its tasks at train time, and opens with them without reading any data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from meta_helpers import small_config

from market_metarl.config import read_toml
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.rundir import learner_names, open_run, read_run_json, write_run_json
from market_metarl.meta.runtasks import (
    TASKS_FILE,
    experiment_of_run,
    task_of,
    task_record,
    tasks_digest,
)
from market_metarl.meta.trainer import train
from market_metarl.types import CostSpec, RunError, TaskSpec

ROOT = Path(__file__).resolve().parents[2]


def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make reading a source, or building a symbol's tasks, fail loudly."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the run's data was read")

    monkeypatch.setattr("market_metarl.data.sources.load_bars", refuse)
    monkeypatch.setattr("market_metarl.data.sources.load_bars_with_report", refuse)
    monkeypatch.setattr("market_metarl.data.tasks._symbol_tasks", refuse)


def records(tasks: Any) -> list[dict[str, Any]]:
    return [task_record(t) for t in tasks]


def same_tasks(a: Experiment, b: Experiment) -> None:
    """Every task, every field, in order; and the settings they came from."""
    assert a.tasks.tasks == b.tasks.tasks
    assert records(a.tasks) == records(b.tasks)
    for t, u in zip(a.tasks, b.tasks, strict=True):
        assert t.name == u.name and hash(t) == hash(u)
    assert (a.tasks.data, a.tasks.regimes, a.tasks.splits, a.tasks.costs) == (
        b.tasks.data,
        b.tasks.regimes,
        b.tasks.splits,
        b.tasks.costs,
    )


def old_style(run_dir: Path, dest: Path) -> Path:
    """A copy of ``run_dir`` as written before runs recorded their tasks."""
    shutil.copytree(run_dir, dest)
    (dest / TASKS_FILE).unlink()
    state = read_run_json(dest)
    del state["tasks"]
    write_run_json(dest, state)
    return dest


def test_a_task_record_round_trips_every_field() -> None:
    import datetime as dt

    task = TaskSpec(
        "synthetic:ar-regimes?seed=3",
        "AR",
        dt.date(2001, 2, 3),
        dt.date(2001, 6, 30),
        "up",
        "val",
        CostSpec(fee_bps=0.5, slippage_bps=1.25, min_fee=1.0, impact_coef=0.1),
        7,
        (("mu", 1e-4), ("phi", -0.3), ("sigma", 0.011)),
    )
    back = task_of(json.loads(json.dumps(task_record(task))))
    assert back == task and back.params == task.params and back.costs == task.costs


def test_an_opened_run_has_its_training_tasks_without_reading_data(
    trained_run: Path, small_exp: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads((trained_run / TASKS_FILE).read_text())
    assert len(doc["tasks"]) == len(small_exp.tasks)
    assert read_run_json(trained_run)["tasks"] == tasks_digest(small_exp.tasks.tasks)
    fresh = Experiment.from_config(small_config())
    no_data(monkeypatch)
    run = TrainedRun.open(trained_run)
    same_tasks(run.experiment, small_exp)
    same_tasks(run.experiment, fresh)
    assert run.test_tasks() == small_exp.tasks.split("test")


def test_a_run_without_recorded_tasks_opens_the_old_way(
    trained_run: Path, small_exp: Experiment, tmp_path: Path
) -> None:
    old = old_style(trained_run, tmp_path / "old")
    same_tasks(TrainedRun.open(old).experiment, small_exp)


def test_overriding_a_data_section_rebuilds_the_tasks(trained_run: Path) -> None:
    costs = {"fee_bps": 5.0, "slippage_bps": 0.0, "borrow_bps_annual": 0.0}
    run = TrainedRun.open(trained_run, {"costs": costs})
    assert run.costs.fee_bps == 5.0
    assert {t.costs for t in run.experiment.tasks} == {run.costs}
    kept = TrainedRun.open(trained_run, {"backtest": {"vol_target": 0.2}})
    assert read_run_json(trained_run)["tasks"] == tasks_digest(kept.experiment.tasks.tasks)


def test_an_edited_or_missing_task_file_is_a_clear_error(trained_run: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(trained_run, tmp_path / "run")
    path = run_dir / TASKS_FILE
    doc = json.loads(path.read_text())
    doc["tasks"][0]["label"] = "edited"
    path.write_text(json.dumps(doc))
    with pytest.raises(RunError, match="does not hold the tasks"):
        TrainedRun.open(run_dir)
    path.write_text('{"format": 1, "tasks": [')
    with pytest.raises(RunError, match="corrupt"):
        TrainedRun.open(run_dir)
    path.unlink()
    with pytest.raises(RunError, match="is missing"):
        TrainedRun.open(run_dir)


def test_resuming_a_run_without_recorded_tasks_records_them(
    trained_run: Path, small_exp: Experiment, tmp_path: Path
) -> None:
    old = old_style(trained_run, tmp_path / "old")
    train(small_exp, "maml", old, seed=0, resume=True)
    assert read_run_json(old)["tasks"] == tasks_digest(small_exp.tasks.tasks)
    assert (old / TASKS_FILE).is_file()


def test_resuming_on_other_tasks_is_refused(
    trained_run: Path, small_exp: Experiment, tmp_path: Path
) -> None:
    run_dir = shutil.copytree(trained_run, tmp_path / "run")
    state = read_run_json(run_dir)
    state["tasks"] = "0" * 16
    write_run_json(run_dir, state)
    with pytest.raises(RunError, match="other tasks"):
        train(small_exp, "maml", run_dir, seed=0, resume=True)


def test_the_default_config_opens_with_the_tasks_a_fresh_resolution_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``envs/default.toml`` (HMM regimes on bundled data), on three of its symbols."""
    data = {"symbols": ["SPY", "USO"], "heldout_symbols": ["AIG"]}
    exp = Experiment.from_toml(ROOT / "envs" / "default.toml", data=data)
    run_dir = tmp_path / "run"
    open_run(run_dir, exp, "maml", learner_names("maml", True), 0, False)
    fresh = Experiment.from_config(read_toml(run_dir / "config.toml"))
    no_data(monkeypatch)
    opened = experiment_of_run(run_dir, read_run_json(run_dir))
    assert {t.split for t in opened.tasks} == {"train", "test"}
    assert {t.symbol for t in opened.tasks.split("test")} >= {"AIG"}
    same_tasks(opened, exp)
    same_tasks(opened, fresh)
