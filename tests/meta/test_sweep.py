"""Sweeps on the local backend: grid parsing, the table, resuming after an interruption, and
each cell reproducing a plain training run (the Ray backend: ``tests/meta/test_ray.py``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from meta_helpers import small_config

from market_metarl.cli import main
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.rundir import load_checkpoint, write_toml
from market_metarl.meta.sweep import (
    combinations,
    params_digest,
    parse_grid,
    run_sweep,
    with_settings,
)
from market_metarl.meta.trainer import train
from market_metarl.types import ConfigError, RunError

GRID = ["hidden=8,16", "train.maml.inner_lr=0.05"]


def sweep_config() -> dict[str, Any]:
    return small_config(
        iterations=4, checkpoint_every=2, pooled={"iterations": 2}, maml={"batch": 4}
    )


def without_timing(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in results]


def test_grid_values_are_toml_scalars_and_bare_keys_are_train_keys() -> None:
    grid = parse_grid(
        ["hidden=8,16", "env.action=continuous,discrete", "train.maml.first_order=true"]
    )
    assert grid == [
        ("train.hidden", [8, 16]),
        ("env.action", ["continuous", "discrete"]),
        ("train.maml.first_order", [True]),
    ]
    assert parse_grid(["inner_lr=0.05,1e-1"]) == [("train.inner_lr", [0.05, 0.1])]
    assert combinations(grid) == [
        {"train.hidden": h, "env.action": a, "train.maml.first_order": True}
        for h in (8, 16)
        for a in ("continuous", "discrete")
    ]
    assert combinations([]) == [{}]
    cfg = with_settings({"train": {"hidden": 4}}, {"train.hidden": 8, "env.window": 3})
    assert cfg == {"train": {"hidden": 8}, "env": {"window": 3}}


@pytest.mark.parametrize(
    "text, message",
    [
        ("hidden", "must look like key=v1,v2"),
        ("hidden=", "must look like key=v1,v2"),
        ("a.b.c=1", "section.name"),
        ("hidden=8,,16", "empty value"),
    ],
)
def test_bad_grid_settings_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grid([text])
    with pytest.raises(ConfigError, match=r"names train\.hidden twice"):
        parse_grid(["hidden=8", "train.hidden=16"])


def test_a_setting_the_config_rejects_is_named_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--grid train.hiden=8: unknown key"):
        run_sweep(sweep_config(), "maml", 1, parse_grid(["hiden=8"]), tmp_path / "s")
    with pytest.raises(ConfigError, match=r"--grid train.hidden=0: train.hidden must be >= 1"):
        run_sweep(sweep_config(), "maml", 1, parse_grid(["hidden=0,8"]), tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def full_sweep(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("sweep") / "full"
    return run_sweep(sweep_config(), "maml", 2, parse_grid(GRID), out)


def test_sweep_writes_a_table_best_first_with_intervals(full_sweep: Any) -> None:
    assert (full_sweep.ran, full_sweep.skipped, full_sweep.split) == (4, 0, "test")
    rows = full_sweep.rows
    assert [r.settings["train.hidden"] for r in rows] in ([8, 16], [16, 8])
    assert rows[0].score >= rows[1].score
    for row in rows:
        assert row.seeds == 2 and row.tasks > 0
        assert row.ci_low <= row.score <= row.ci_high
        assert row.gain == pytest.approx(row.score - row.zero_shot)
        mine = [r for r in full_sweep.results if r["combo"] == row.combo]
        assert row.score == pytest.approx(
            sum(sum(r["post_sharpe"]) for r in mine) / (2 * row.tasks)
        )
    with (full_sweep.out / "sweep.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [int(t["combo"]) for t in table] == [r.combo for r in rows]
    assert list(table[0])[:4] == ["rank", "combo", "train.hidden", "train.maml.inner_lr"]
    assert sorted(p.name for p in (full_sweep.out / "results").iterdir()) == [
        f"combo0{c}-seed{s}.json" for c in (0, 1) for s in (0, 1)
    ]


def test_each_cell_is_the_plain_training_run_of_its_seed(full_sweep: Any, tmp_path: Path) -> None:
    cell = next(r for r in full_sweep.results if r["combo"] == 1 and r["seed"] == 1)
    exp = Experiment.from_config(with_settings(sweep_config(), cell["settings"]))
    train(exp, "maml", tmp_path / "plain", seed=1)
    assert params_digest(tmp_path / "plain", "maml") == cell["params"]


def test_interrupted_sweep_resumes_skipping_finished_runs(full_sweep: Any, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    seen: list[dict[str, Any]] = []

    def stop_after_first(result: dict[str, Any]) -> None:
        seen.append(result)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep_config(), "maml", 2, parse_grid(GRID), out, on_result=stop_after_first)
    assert len(list((out / "results").iterdir())) == 1 and not (out / "sweep.csv").exists()
    resumed = run_sweep(sweep_config(), "maml", 2, parse_grid(GRID), out)
    assert (resumed.ran, resumed.skipped) == (3, 1)
    assert without_timing(resumed.results) == without_timing(full_sweep.results)
    assert resumed.rows == full_sweep.rows
    again = run_sweep(sweep_config(), "maml", 2, parse_grid(GRID), out)
    assert (again.ran, again.skipped) == (0, 4) and again.rows == full_sweep.rows


def test_a_piece_interrupted_mid_training_resumes_from_its_checkpoint(
    full_sweep: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from market_metarl.meta import trainer

    real_save = trainer.save_checkpoint

    def stop_after_first_checkpoint(path: Path, *args: Any) -> None:
        real_save(path, *args)
        if "combo01" in str(path) and "seed0" in str(path):
            raise KeyboardInterrupt  # iteration 2 of 4 is on disk, the run is unfinished

    monkeypatch.setattr(trainer, "save_checkpoint", stop_after_first_checkpoint)
    out = tmp_path / "midway"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep_config(), "maml", 2, parse_grid(GRID), out)
    monkeypatch.undo()
    piece = out / "runs" / "combo01" / "seed0"
    assert json.loads((piece / "run.json").read_text())["iterations"] == {}  # not yet recorded
    assert load_checkpoint(piece / "checkpoints" / "maml.pt")["iteration"] == 2
    resumed = run_sweep(sweep_config(), "maml", 2, parse_grid(GRID), out)
    assert (resumed.ran, resumed.skipped) == (2, 2)
    assert without_timing(resumed.results) == without_timing(full_sweep.results)
    for run in sorted((full_sweep.out / "runs").glob("combo*/seed*")):
        mine = out / "runs" / run.parent.name / run.name
        assert (mine / "metrics.csv").read_text() == (run / "metrics.csv").read_text()


def test_a_second_sweep_into_a_running_one_is_refused(tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "busy"
    run_sweep(sweep_config(), "maml", 1, [], out)
    with (out / "sweep.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sweep holds it
        with pytest.raises(RunError, match="another sweep is running in"):
            run_sweep(sweep_config(), "maml", 1, [], out)


def test_a_window_no_scoring_task_is_long_enough_for_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--grid train.horizon=200: no test task has the 209"):
        run_sweep(sweep_config(), "maml", 1, parse_grid(["horizon=30,200"]), tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_another_sweep_in_the_same_folder_is_refused(full_sweep: Any, tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"holds another sweep .*seeds"):
        run_sweep(sweep_config(), "maml", 3, parse_grid(GRID), full_sweep.out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a sweep"):
        run_sweep(sweep_config(), "maml", 1, [], tmp_path / "other")
    with pytest.raises(ConfigError, match="no val tasks"):
        run_sweep(sweep_config(), "maml", 1, [], tmp_path / "val", split="val")


def test_sweep_command_prints_the_table_and_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tomllib

    config = tmp_path / "small.toml"
    cfg = sweep_config()
    write_toml(config, cfg)
    assert tomllib.loads(config.read_text()) == cfg
    argv = ["sweep", "--config", str(config), "--algo", "maml", "--seeds", "1"]
    assert main([*argv, "--grid", "hidden=8,16", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "2 runs trained now, 0 found finished" in out and "optimistic" in out
    assert out.splitlines()[2].split() == [
        "hidden",
        "seeds",
        "tasks",
        "score",
        "ci_low",
        "ci_high",
        "zero_shot",
        "gain",
    ]
    for bad, message in [
        (["--grid", "hidden"], "must look like key=v1,v2"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--address", "10.0.0.1:6379"], "use it with --backend ray"),
    ]:
        assert main([*argv, *bad, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "bad").exists()
