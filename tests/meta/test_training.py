"""Trainer: reproducible, resumable, and MAML really adapts on the synthetic family."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from meta_helpers import SMALL_SYNTHETIC, small_config

from market_metarl.cli import main
from market_metarl.meta.evaluation import evaluate_adaptation
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.rundir import load_checkpoint
from market_metarl.meta.trainer import train
from market_metarl.types import ConfigError, RunError


def _state(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / f"{name}.pt")["agent"]["policy"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("algo", ["maml", "rl2"])
def test_same_seed_same_parameters(small_exp: Experiment, tmp_path: Path, algo: str) -> None:
    train(small_exp, algo, tmp_path / "a", seed=3)
    train(small_exp, algo, tmp_path / "b", seed=3)
    train(small_exp, algo, tmp_path / "c", seed=4)
    assert _same(_state(tmp_path / "a", algo), _state(tmp_path / "b", algo))
    assert _same(_state(tmp_path / "a", "pooled"), _state(tmp_path / "b", "pooled"))
    assert not _same(_state(tmp_path / "a", algo), _state(tmp_path / "c", algo))


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    full = Experiment.from_config(small_config(iterations=6, pooled={"iterations": 6}))
    half = Experiment.from_config(small_config(iterations=6, pooled={"iterations": 6}))
    train(full, "maml", tmp_path / "full", seed=1)
    # an interrupted run: the first checkpoint only (iterations 1-2 of maml), then resumed
    interrupted = tmp_path / "resumed"
    train(
        Experiment.from_config(small_config(iterations=2, pooled={"iterations": 6})),
        "maml",
        interrupted,
        seed=1,
    )
    # pretend it stopped there: rewrite run.json's config digest to the full run's, as a crash would leave it
    import json

    state = json.loads((interrupted / "run.json").read_text())
    state["config"] = json.loads((tmp_path / "full" / "run.json").read_text())["config"]
    state["iterations"] = {"maml": 2}
    (interrupted / "run.json").write_text(json.dumps(state))
    (interrupted / "checkpoints" / "pooled.pt").unlink()
    train(half, "maml", interrupted, seed=1, resume=True)
    assert _same(_state(tmp_path / "full", "maml"), _state(interrupted, "maml"))
    assert _same(_state(tmp_path / "full", "pooled"), _state(interrupted, "pooled"))


@pytest.mark.parametrize(
    "where, interval",
    [
        ("writing metrics", 1),  # before any checkpoint exists
        ("writing metrics", 2),
        ("after the checkpoint", 2),
    ],
)
def test_a_run_killed_while_checkpointing_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, interval: int
) -> None:
    """The checkpoint, not run.json, says where a run stands: a kill while a checkpoint interval
    is being written neither repeats iterations nor leaves duplicate or cut metrics rows."""
    from market_metarl.meta import trainer, trainlog

    exp = Experiment.from_config(small_config(iterations=6, pooled={"iterations": 4}))
    train(exp, "maml", tmp_path / "full", seed=2)
    real_append, real_save = trainlog.append_metrics, trainer.save_checkpoint
    calls = {"n": 0}

    def cut_metrics(path: Path, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == interval:  # this interval's rows: a line cut short, no checkpoint yet
            with path.open("a") as fh:
                fh.write(f"maml,{2 * interval},query_loss,-0.05\nmaml,{2 * interval},pre_ad")
            raise KeyboardInterrupt
        real_append(path, *args)  # type: ignore[arg-type]

    def crash_after_checkpoint(*args: object) -> None:
        real_save(*args)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 2:  # iteration 4's checkpoint on disk, run.json still says 2
            raise KeyboardInterrupt

    if where == "writing metrics":
        monkeypatch.setattr(trainlog, "append_metrics", cut_metrics)
    else:
        monkeypatch.setattr(trainer, "save_checkpoint", crash_after_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(exp, "maml", tmp_path / "crashed", seed=2)
    monkeypatch.undo()
    if interval == 1:  # interrupted before its first checkpoint: the new run was removed
        assert not (tmp_path / "crashed").exists()
    else:
        recorded = (tmp_path / "crashed" / "run.json").read_text()
        assert ('"maml": 2' in recorded) == (interval == 2)
    train(exp, "maml", tmp_path / "crashed", seed=2, resume=interval != 1)
    for name in ("maml", "pooled"):
        assert _same(_state(tmp_path / "full", name), _state(tmp_path / "crashed", name))
    full = (tmp_path / "full" / "metrics.csv").read_text().splitlines()
    assert (tmp_path / "crashed" / "metrics.csv").read_text().splitlines() == full


@pytest.mark.parametrize("estimator", ["pathwise", "score_function"])
def test_training_never_reads_the_global_torch_rng(tmp_path: Path, estimator: str) -> None:
    """Each learner samples from its own seeded generator, so a distributed worker (whose global
    RNG is whatever it is) trains the same parameters."""
    exp = Experiment.from_config(small_config(estimator=estimator))
    torch.manual_seed(1)
    train(exp, "maml", tmp_path / "a", seed=5)
    torch.manual_seed(999)
    torch.rand(17)
    train(exp, "maml", tmp_path / "b", seed=5)
    for name in ("maml", "pooled"):
        assert _same(_state(tmp_path / "a", name), _state(tmp_path / "b", name))


def test_training_into_an_existing_run_needs_resume(
    small_exp: Experiment, trained_run: Path
) -> None:
    with pytest.raises(RunError, match="--resume"):
        train(small_exp, "maml", trained_run, seed=0)
    with pytest.raises(RunError, match="--algo maml --seed 0"):
        train(small_exp, "rl2", trained_run, seed=0, resume=True)


def test_corrupt_or_foreign_checkpoint_is_a_clear_error(trained_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "checkpoints" / "maml.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(RunError, match="corrupt or not a market_metarl checkpoint"):
        TrainedRun.open(broken).agent("adapted")
    torch.save({"weights": torch.zeros(3)}, broken / "checkpoints" / "maml.pt")
    with pytest.raises(RunError, match="not a market_metarl checkpoint"):
        TrainedRun.open(broken).agent("adapted")
    shutil.copy(broken / "checkpoints" / "pooled.pt", broken / "checkpoints" / "maml.pt")
    with pytest.raises(RunError, match="holds a pooled"):
        TrainedRun.open(broken).agent("adapted")
    (broken / "run.json").write_text("{ nope")
    with pytest.raises(RunError, match="corrupt"):
        TrainedRun.open(broken)
    with pytest.raises(RunError, match="does not exist"):
        TrainedRun.open(tmp_path / "missing")


def test_short_maml_run_improves_after_adaptation(tmp_path: Path) -> None:
    exp = Experiment.from_config(
        small_config(iterations=150, pooled={"iterations": 1}, maml={"batch": 8})
    )
    train(exp, "maml", tmp_path / "run", seed=0)
    agent = TrainedRun.open(tmp_path / "run").agent("adapted")
    pool = exp.pool("test")
    episode = pool.episode(list(range(len(pool))), exp.train.window_days)
    results = evaluate_adaptation(agent, episode, exp.train.adapt_days, exp.train.horizon)
    pre = np.mean([r.pre_sharpe for r in results])
    post = np.mean([r.post_sharpe for r in results])
    gain = np.array([r.post_sharpe - r.pre_sharpe for r in results])
    assert post > pre + 1.0, (pre, post)
    assert (gain > 0).mean() > 0.6


def test_unknown_keys_in_train_section_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"train.iteratons.*valid keys of \[train\]"):
        Experiment.from_config(small_config(iteratons=5))


def test_train_cli_writes_a_run_and_rejects_bad_input(tmp_path: Path) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_SYNTHETIC)
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--algo", "pooled", "--out", str(out)]) == 0
    assert (out / "checkpoints" / "pooled.pt").is_file()
    assert (out / "config.toml").is_file() and (out / "metrics.csv").is_file()
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL_SYNTHETIC.replace("[train]", "[train]\nhorizon = -3"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "market_metarl",
            "train",
            "--config",
            str(bad),
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: train.horizon must be >= 1, got -3"]
    assert not (tmp_path / "x").exists()


def test_training_runs_on_its_threads_and_restores_the_callers(tmp_path: Path) -> None:
    from market_metarl.meta.trainer import TrainEvent

    seen: list[int] = []

    def on_event(event: TrainEvent) -> None:
        seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        exp = Experiment.from_config(small_config(threads=1, pooled={"iterations": 2}))
        train(exp, "pooled", tmp_path / "run", seed=0, on_event=on_event)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_are_an_execution_setting_a_run_may_resume_with_others() -> None:
    from market_metarl.meta.rundigest import config_digest
    from market_metarl.meta.trainer import with_threads

    exp = Experiment.from_config(small_config())
    assert exp.train.threads == 1 and with_threads(exp, None) is exp
    two = with_threads(exp, 2)
    assert two.train.threads == 2
    assert config_digest(two, ["maml", "pooled"]) == config_digest(exp, ["maml", "pooled"])
    with pytest.raises(ConfigError, match=r"train\.threads must be >= 1, got 0"):
        Experiment.from_config(small_config(threads=0))


def test_train_cli_takes_threads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_SYNTHETIC)
    base = ["train", "--config", str(cfg), "--algo", "pooled"]
    assert main([*base, "--out", str(tmp_path / "bad"), "--threads", "0"]) == 2
    assert "--threads must be >= 1, got 0" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "run"), "--threads", "2"]) == 0
    assert "threads = 2" in (tmp_path / "run" / "config.toml").read_text().splitlines()


def test_a_run_of_the_previous_release_keeps_its_config_digest() -> None:
    # the committed ledger fixture's run was trained before [train] objective/vol_target and the
    # daily trend features existed: settings added since, at their defaults, leave its digest (so
    # --resume and its paper ledger) unchanged; set, they change it
    import json
    from pathlib import Path

    from market_metarl.config import read_toml
    from market_metarl.meta.rundigest import config_digest

    run = Path(__file__).resolve().parents[1] / "fixtures" / "ledger_v1" / "run"
    recorded = json.loads((run / "run.json").read_text())["config"]
    cfg = read_toml(run / "config.toml")
    learners = ["maml", "pooled"]
    assert config_digest(Experiment.from_config(cfg), learners) == recorded
    cfg["train"]["vol_target"] = 0.15
    cfg["features"]["vol_window"] = 2
    assert config_digest(Experiment.from_config(cfg), learners) != recorded
