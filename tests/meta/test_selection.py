"""Checkpoint selection on validation (``[train] select_on = "val"``): known answers, invariants.

The run keeps the weights of its best validation score, bit for bit; validation never changes
the training trajectory; the test split is never read; off, runs are today's; resume keeps the
best so far; bad settings are refused naming the setting.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from meta_helpers import same_run, small_config, tensors

from market_metarl.data.sources import load_bars
from market_metarl.meta.evaluation import adapted_sharpes, evaluate_adaptation
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.registry import algorithm_names
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.rundir import load_checkpoint
from market_metarl.meta.selection import Selection
from market_metarl.meta.trainer import train
from market_metarl.types import ConfigError

SPLITS: dict[str, Any] = {
    "train": ["2000-01-01", "2007-12-31"],
    "val": ["2008-03-01", "2010-12-31"],
    "test": ["2011-03-01", "2019-12-31"],
    "embargo_days": 20,
}
TEST_START = pd.Timestamp(SPLITS["test"][0])
VAL = (pd.Timestamp(SPLITS["val"][0]), pd.Timestamp(SPLITS["val"][1]))


def select_config(source: str | None = None, **train: Any) -> dict[str, Any]:
    """The small synthetic config with a val split, selection on (overridable), log every row.

    ``source`` (a csv spec) replaces the synthetic symbol; its regimes are then fixed windows.
    """
    short = {"model_based": {"iterations": 4}, "pearl": {"iterations": 4}}  # own defaults: 1500
    cfg = small_config(
        **{"select_on": "val", "log_every": 1, "checkpoint_every": 2, **short, **train}
    )
    cfg["splits"] = dict(SPLITS)
    if source is not None:
        cfg["data"]["symbols"] = [source]
        cfg["regimes"] = {"method": "window", "min_length": 40, "min_task_days": 71}
        cfg["regimes"]["params"] = {"length": 71}
    return cfg


def agent_part(run: Path, learner: str, part: str = "agent") -> dict[str, torch.Tensor]:
    payload = load_checkpoint(run / "checkpoints" / f"{learner}.pt", learner)
    return tensors(payload["selected"]["agent"] if part == "selected" else payload[part])


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def metric_rows(run: Path, metric: str | None = None) -> list[list[str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [r for r in rows if metric is None or r[2] == metric]


def val_scores(run: Path, learner: str) -> dict[int, float]:
    return {int(r[1]): float(r[3]) for r in metric_rows(run, "val_score") if r[0] == learner}


def write_bars(path: Path, tweak: Any = None) -> str:
    bars = load_bars("synthetic:ar-regimes?seed=1&tasks=60&days=71")
    if tweak is not None:
        bars = tweak(bars.copy())
    frame = bars.reset_index()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False, float_format="%.10g")
    return f"csv:{path}"


def scale_prices(bars: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp | None) -> pd.DataFrame:
    """Prices in ``[start, end]`` moved by a random walk of their own (volume untouched)."""
    mask = (bars.index >= start) & ((bars.index <= end) if end is not None else True)
    rng = np.random.default_rng(5)
    factor = np.exp(np.cumsum(rng.normal(0, 0.02, int(mask.sum()))))
    for col in ("open", "high", "low", "close"):
        bars.loc[mask, col] = bars.loc[mask, col] * factor
    return bars


# (a) known answers


def test_the_kept_weights_are_those_of_the_scripted_best_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = {"maml": [0.1, 0.5, 0.2, 0.5], "pooled": [0.3, 0.0, 0.9, 0.4]}
    calls: list[tuple[str, int]] = []

    def scripted(self: Selection, learner: Any) -> float:
        calls.append((learner.name, len([c for c in calls if c[0] == learner.name]) + 1))
        return script[learner.name][calls[-1][1] - 1]

    monkeypatch.setattr(Selection, "score", scripted)
    exp = Experiment.from_config(select_config(select_every=1))
    run = train(exp, "maml", tmp_path / "sel", seed=2)
    # maml: 0.5 first at iteration 2 (a tie later keeps the earlier); pooled: 0.9 at 3
    state = json.loads((run / "run.json").read_text())
    assert state["selected"] == {
        "maml": {"iteration": 2, "score": 0.5},
        "pooled": {"iteration": 3, "score": 0.9},
    }
    assert val_scores(run, "maml") == {1: 0.1, 2: 0.5, 3: 0.2, 4: 0.5}
    for learner, chosen in (("maml", 2), ("pooled", 3)):
        short = Experiment.from_config(
            select_config(select_on="none", iterations=chosen, pooled={"iterations": chosen})
        )
        ref = train(short, "maml", tmp_path / f"ref-{learner}", seed=2)
        assert_same(agent_part(run, learner, "selected"), agent_part(ref, learner))
        # what an opened run trades is the kept weights
        opened = TrainedRun.open(run).learner(learner).agent_state()
        assert_same(tensors(opened), agent_part(ref, learner))


@pytest.mark.parametrize("algo", algorithm_names())
def test_every_algorithm_keeps_its_best_scored_weights_and_its_trajectory(
    tmp_path: Path, algo: str
) -> None:
    short: dict[str, Any] = {a: {"iterations": 3} for a in ("model_based", "pearl")}
    exp = Experiment.from_config(select_config(select_every=1, iterations=3, **short))
    run = train(exp, algo, tmp_path / "sel", seed=1)
    off = train(
        Experiment.from_config(select_config(select_on="none", iterations=3, **short)),
        algo,
        tmp_path / "off",
        seed=1,
    )
    state = json.loads((run / "run.json").read_text())
    learners = [algo] if algo == "pooled" else [algo, "pooled"]
    assert sorted(state["selected"]) == sorted(learners)
    for learner in learners:
        # the trajectory is the unselected run's: latest weights and training state identical
        assert_same(agent_part(run, learner), agent_part(off, learner))
        assert_same(agent_part(run, learner, "training"), agent_part(off, learner, "training"))
        scores = val_scores(run, learner)
        assert sorted(scores) == [1, 2, 3]
        chosen = state["selected"][learner]["iteration"]
        assert chosen == max(scores, key=lambda i: (scores[i], -i))
        # the score recorded is the real scorer's on the kept weights
        selection = Selection.of(exp)
        assert selection is not None
        learner_now = TrainedRun.open(run).learner(learner)
        assert selection.score(learner_now) == state["selected"][learner]["score"]
        assert abs(state["selected"][learner]["score"] - scores[chosen]) <= 1e-5 * max(
            1.0, abs(scores[chosen])
        )


@pytest.fixture(scope="module")
def rl2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl2") / "run"
    return train(Experiment.from_config(small_config(iterations=3)), "rl2", out, seed=0)


@pytest.mark.parametrize("strategy", ["adapted", "pooled", "rl2"])
def test_batched_scores_equal_the_day_by_day_ones(
    trained_run: Path, rl2_run: Path, strategy: str
) -> None:
    exp = Experiment.from_config(select_config())
    selection = Selection.of(exp)
    assert selection is not None and selection.episode.batch >= 5
    run = TrainedRun.open(rl2_run if strategy == "rl2" else trained_run)
    agent = run.agent("adapted" if strategy == "rl2" else strategy)
    k, h = selection.k_days, selection.horizon
    batched = adapted_sharpes(agent, selection.episode, k, h)
    slow = [r.post_sharpe for r in evaluate_adaptation(agent, selection.episode, k, h)]
    np.testing.assert_allclose(batched, slow, rtol=1e-4, atol=1e-4)
    assert np.ptp(batched) > 0.1  # scores that can tell tasks apart


# (b), (c): what validation and test data may change


def test_validation_data_changes_only_the_choice(tmp_path: Path) -> None:
    base = write_bars(tmp_path / "a.csv")
    moved = write_bars(tmp_path / "b.csv", lambda b: scale_prices(b, *VAL))
    a = train(
        Experiment.from_config(select_config(base, select_every=1)), "maml", tmp_path / "a", seed=0
    )
    b = train(
        Experiment.from_config(select_config(moved, select_every=1)), "maml", tmp_path / "b", seed=0
    )
    for learner in ("maml", "pooled"):
        assert_same(agent_part(a, learner), agent_part(b, learner))
        assert_same(agent_part(a, learner, "training"), agent_part(b, learner, "training"))
        assert val_scores(a, learner) != val_scores(b, learner)
    # every training row (each iteration's step stats) is identical
    assert [r for r in metric_rows(a) if r[2] != "val_score"] == [
        r for r in metric_rows(b) if r[2] != "val_score"
    ]


def test_test_period_data_never_changes_a_selected_run(tmp_path: Path) -> None:
    base = write_bars(tmp_path / "a.csv")
    moved = write_bars(tmp_path / "b.csv", lambda b: scale_prices(b, TEST_START, None))
    a = train(
        Experiment.from_config(select_config(base, select_every=1)), "maml", tmp_path / "a", seed=0
    )
    b = train(
        Experiment.from_config(select_config(moved, select_every=1)), "maml", tmp_path / "b", seed=0
    )
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    for learner in ("maml", "pooled"):
        for part in ("agent", "training", "selected"):
            assert_same(agent_part(a, learner, part), agent_part(b, learner, part))
    sa, sb = (json.loads((r / "run.json").read_text()) for r in (a, b))
    assert sa["selected"] == sb["selected"] and sa["data_hashes"] != sb["data_hashes"]


# (d) off: today's runs


def test_selection_off_is_todays_run_bit_for_bit(tmp_path: Path) -> None:
    today = small_config()
    explicit = small_config(select_on="none", select_every=3)
    a = train(Experiment.from_config(today), "maml", tmp_path / "a", seed=0)
    b = train(Experiment.from_config(explicit), "maml", tmp_path / "b", seed=0)
    for learner in ("maml", "pooled"):
        same_run(a, b, learner)
        assert "selected" not in load_checkpoint(b / "checkpoints" / f"{learner}.pt", learner)
    sa, sb = (json.loads((r / "run.json").read_text()) for r in (a, b))
    assert "selected" not in sb and sa["config"] == sb["config"]
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    # selection on is another config (a run cannot resume into the other)
    on = Experiment.from_config(small_config(select_on="val") | {"splits": dict(SPLITS)})
    from market_metarl.meta.rundigest import config_digest

    assert config_digest(on, ["maml", "pooled"]) != sa["config"]


# (e) resume


def test_resume_keeps_the_best_so_far(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = select_config(select_every=1, iterations=6, pooled={"iterations": 6})
    exp = Experiment.from_config(cfg)
    full = train(exp, "maml", tmp_path / "full", seed=3)
    # a run killed during iteration 5 of maml: its last checkpoint is iteration 4
    from market_metarl.meta import trainer

    real = trainer.Selection.score
    seen = {"n": 0}

    def dying(self: Selection, learner: Any) -> float:
        seen["n"] += 1
        if seen["n"] == 5:
            raise KeyboardInterrupt
        return real(self, learner)

    monkeypatch.setattr(trainer.Selection, "score", dying)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(exp, "maml", killed, seed=3)
    monkeypatch.setattr(trainer.Selection, "score", real)
    assert json.loads((killed / "run.json").read_text())["iterations"] == {"maml": 4}
    train(exp, "maml", killed, seed=3, resume=True)
    for learner in ("maml", "pooled"):
        for part in ("agent", "selected"):
            assert_same(agent_part(full, learner, part), agent_part(killed, learner, part))
    sf, sk = (json.loads((r / "run.json").read_text()) for r in (full, killed))
    assert sf["selected"] == sk["selected"]
    assert (full / "metrics.csv").read_bytes() == (killed / "metrics.csv").read_bytes()


# (f) bad settings


@pytest.mark.parametrize(
    "train_keys, splits, named",
    [
        ({"select_every": 0}, SPLITS, "train.select_every"),
        ({"select_every": -2}, SPLITS, "train.select_every"),
        ({"select_on": "test"}, SPLITS, "select_on"),
        ({"select_on": "val"}, None, "train.select_on"),
        ({"select_on": "val"}, {**SPLITS, "val": []}, "train.select_on"),
    ],
)
def test_bad_selection_settings_name_the_setting(
    train_keys: dict[str, Any], splits: dict[str, Any] | None, named: str
) -> None:
    cfg = small_config(**train_keys)
    if splits is not None:
        cfg["splits"] = dict(splits)
    with pytest.raises(ConfigError, match=named):
        Experiment.from_config(cfg)


def test_validation_tasks_too_short_to_score_are_refused_before_any_write(tmp_path: Path) -> None:
    cfg = select_config()
    cfg["regimes"]["min_task_days"] = 40
    cfg["splits"]["val"] = ["2008-03-01", "2008-05-20"]  # under K - 1 + H = 69 days
    exp = Experiment.from_config(cfg)
    assert exp.tasks.split("val")
    with pytest.raises(ConfigError, match='select_on = "val": no validation task has the 69'):
        train(exp, "pooled", tmp_path / "run", seed=0)
    assert not (tmp_path / "run").exists()


def test_select_every_defaults_to_checkpoint_every() -> None:
    assert Experiment.from_config(small_config(checkpoint_every=3)).train.select_every == 3
    assert Experiment.from_config(small_config()).train.select_every == 2
    cfg = small_config(checkpoint_every=3, select_every=1)
    assert Experiment.from_config(cfg).train.select_every == 1


def test_a_copied_run_is_opened_with_its_kept_weights(tmp_path: Path) -> None:
    run = train(
        Experiment.from_config(select_config(select_every=1)), "pooled", tmp_path / "a", seed=0
    )
    shutil.copytree(run, tmp_path / "b")
    kept = TrainedRun.open(tmp_path / "b").learner("pooled").agent_state()
    assert_same(tensors(kept), agent_part(run, "pooled", "selected"))


def test_train_cli_says_which_iterations_were_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from market_metarl.cli import main
    from market_metarl.meta.rundir import write_toml

    path = tmp_path / "cfg.toml"
    write_toml(path, select_config(select_every=1))
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--algo", "pooled", "--out", str(out)]) == 0
    best = json.loads((out / "run.json").read_text())["selected"]["pooled"]
    shown = f"pooled: kept iteration {best['iteration']} (val score {best['score']:.3f})"
    assert shown in capsys.readouterr().out
