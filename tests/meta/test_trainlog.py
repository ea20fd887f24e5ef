"""Training logs: a metrics row every ``[train] log_every`` iterations, TensorBoard scalars read back
from the event files, a one-line hint without tensorboard, and logging that changes nothing the
run computes."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from meta_helpers import SMALL_SYNTHETIC, small_config

from market_metarl.cli import main
from market_metarl.meta import trainer
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.rundigest import config_digest
from market_metarl.meta.rundir import METRICS_HEADER, load_checkpoint
from market_metarl.meta.trainer import train
from market_metarl.meta.trainlog import adaptation_gains, tensorboard_dir
from market_metarl.types import ConfigError


@pytest.fixture
def accumulator() -> ModuleType:
    return pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="needs the tensorboard extra: pip install -e '.[tensorboard]'",
    )


def _rows(run: Path, learner: str, metric: str) -> list[tuple[int, float]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [
            (int(r["iteration"]), float(r["value"]))
            for r in csv.DictReader(fh)
            if r["learner"] == learner and r["metric"] == metric
        ]


def _scalars(accumulator: ModuleType, log_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = accumulator.EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _policy(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / f"{name}.pt")["agent"]["policy"]


def test_rows_fall_every_log_every_iterations_at_checkpoints_and_the_end(tmp_path: Path) -> None:
    exp = Experiment.from_config(
        small_config(iterations=7, checkpoint_every=3, log_every=2, pooled={"iterations": 1})
    )
    train(exp, "maml", tmp_path / "run", seed=0)
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert lines[0] == ",".join(METRICS_HEADER)
    stats = ("query_loss", "pre_adapt_loss", "inner_lr")
    for stat in stats:
        assert [it for it, _ in _rows(tmp_path / "run", "maml", stat)] == [2, 3, 4, 6, 7]
    assert [it for it, _ in _rows(tmp_path / "run", "pooled", "loss")] == [1]
    assert len(lines) == 1 + 5 * len(stats) + 1


def test_default_maml_run_logs_tensorboard_points_matching_metrics_rows(
    tmp_path: Path, accumulator: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default cadence on a 20-iteration run: a point every 5 iterations (>= 1 per 10)."""
    cfg = tmp_path / "small.toml"
    text = SMALL_SYNTHETIC.replace("checkpoint_every = 2", "")  # the defaults: 50, log_every 5
    cfg.write_text(text.replace("[train.pooled]\n", "[train.pooled]\niterations = 2\n"))
    out, tb = tmp_path / "run", tmp_path / "tb"
    argv = ["train", "--config", str(cfg), "--out", str(out), "--iterations", "20"]
    assert main([*argv, "--tensorboard", str(tb)]) == 0
    loss = _scalars(accumulator, tb / "run" / "maml", "train/query_loss")
    assert len(loss) >= 20 // 10
    assert [step for step, _ in loss] == [5, 10, 15, 20]
    rows = _rows(out, "maml", "query_loss")
    assert [it for it, _ in rows] == [5, 10, 15, 20]
    assert [v for _, v in rows] == pytest.approx([v for _, v in loss], rel=1e-5)
    pre = _scalars(accumulator, tb / "run" / "maml", "train/pre_adapt_loss")
    gain = _scalars(accumulator, tb / "run" / "maml", "adapt_gain/loss")
    assert [v for _, v in gain] == pytest.approx(
        [p - q for (_, p), (_, q) in zip(pre, loss, strict=True)], rel=1e-5, abs=1e-7
    )
    seconds = _scalars(accumulator, tb / "run" / "maml", "time/sec_per_iter")
    assert [step for step, _ in seconds] == [5, 10, 15, 20] and all(s > 0 for _, s in seconds)
    assert [step for step, _ in _scalars(accumulator, tb / "run" / "pooled", "train/loss")] == [2]
    with (out / "metrics.csv").open(newline="") as fh:  # the learners' stats only, no timing
        metrics = {row["metric"] for row in csv.DictReader(fh)}
    assert metrics == {"query_loss", "pre_adapt_loss", "inner_lr", "loss"}
    capsys.readouterr()


def test_missing_tensorboard_is_a_one_line_hint_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    exp = Experiment.from_config(small_config(tensorboard=True))
    with pytest.raises(ConfigError, match=r"pip install tensorboard"):
        train(exp, "maml", tmp_path / "run", seed=0)
    assert not (tmp_path / "run").exists()
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_SYNTHETIC)
    argv = ["train", "--config", str(cfg), "--out", str(tmp_path / "cli")]
    assert main([*argv, "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: TensorBoard logging needs the tensorboard")
    assert not (tmp_path / "cli").exists() and not (tmp_path / "tb").exists()


def test_logging_to_tensorboard_changes_no_parameter_and_no_metrics_row(
    tmp_path: Path, accumulator: ModuleType
) -> None:
    """Logging reads no RNG: the same seed gives the same parameters and the same metrics.csv,
    whatever the global torch RNG holds."""
    plain = Experiment.from_config(small_config(log_every=1))
    logged = Experiment.from_config(small_config(log_every=1, tensorboard=True))
    torch.manual_seed(1)
    train(plain, "maml", tmp_path / "plain", seed=5)
    torch.manual_seed(999)
    train(logged, "maml", tmp_path / "logged", seed=5)
    for name in ("maml", "pooled"):
        assert all(
            torch.equal(a, b)
            for a, b in zip(
                _policy(tmp_path / "plain", name).values(),
                _policy(tmp_path / "logged", name).values(),
                strict=True,
            )
        )
    csv_text = (tmp_path / "plain" / "metrics.csv").read_text()
    assert (tmp_path / "logged" / "metrics.csv").read_text() == csv_text
    steps = _scalars(accumulator, tmp_path / "logged" / "tb" / "maml", "train/query_loss")
    assert [step for step, _ in steps] == [1, 2, 3, 4]
    learners = ["maml", "pooled"]
    assert config_digest(plain, learners) == config_digest(logged, learners)


def test_an_interrupted_run_flushes_its_events_and_resumes_without_duplicate_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accumulator: ModuleType
) -> None:
    exp = Experiment.from_config(
        small_config(iterations=6, log_every=1, tensorboard=True, pooled={"iterations": 1})
    )
    train(exp, "maml", tmp_path / "full", seed=2)
    real_save = trainer.save_checkpoint
    calls = {"n": 0}

    def interrupt_at_second_checkpoint(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # rows 3 and 4 logged, their checkpoint never written
            raise KeyboardInterrupt
        real_save(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(trainer, "save_checkpoint", interrupt_at_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(exp, "maml", tmp_path / "run", seed=2)
    monkeypatch.undo()
    log_dir = tmp_path / "run" / "tb" / "maml"
    assert [s for s, _ in _scalars(accumulator, log_dir, "train/query_loss")] == [1, 2, 3, 4]
    train(exp, "maml", tmp_path / "run", seed=2, resume=True)
    resumed = _scalars(accumulator, log_dir, "train/query_loss")
    full = _scalars(accumulator, tmp_path / "full" / "tb" / "maml", "train/query_loss")
    assert resumed == full and [s for s, _ in full] == [1, 2, 3, 4, 5, 6]
    full_csv = (tmp_path / "full" / "metrics.csv").read_text()
    assert (tmp_path / "run" / "metrics.csv").read_text() == full_csv


def test_a_failed_new_run_leaves_no_event_files_in_its_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accumulator: ModuleType
) -> None:
    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    (tmp_path / "run").mkdir()
    monkeypatch.setattr(trainer, "save_checkpoint", interrupt)
    exp = Experiment.from_config(small_config(log_every=1, tensorboard=True))
    with pytest.raises(KeyboardInterrupt):
        train(exp, "maml", tmp_path / "run", seed=0)
    assert list((tmp_path / "run").iterdir()) == []


def test_log_settings_are_checked_and_placed() -> None:
    with pytest.raises(ConfigError, match=r"train.log_every must be >= 1, got 0"):
        Experiment.from_config(small_config(log_every=0))
    with pytest.raises(ConfigError, match=r"train.tensorboard must be true, false or a directory"):
        Experiment.from_config(small_config(tensorboard=""))
    with pytest.raises(ConfigError, match=r"train.tensorboard must be"):
        Experiment.from_config(small_config(tensorboard=3))
    assert tensorboard_dir(Path("runs/a"), False) is None
    assert tensorboard_dir(Path("runs/a"), True) == Path("runs/a/tb")
    assert tensorboard_dir(Path("runs/a"), "logs") == Path("logs/a")


def test_adaptation_gain_is_the_loss_adapting_removed() -> None:
    stats = {"query_loss": 0.25, "pre_adapt_loss": 1.0, "inner_lr": 0.05}
    assert adaptation_gains(stats) == {"loss": 0.75}
    assert adaptation_gains({"pre_adapt_nll": 2.0, "query_nll": 2.5}) == {"nll": -0.5}
    assert adaptation_gains({"loss": 1.0, "pre_adapt_kl": 1.0}) == {}
