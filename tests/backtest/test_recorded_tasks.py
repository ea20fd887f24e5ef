"""A backtest of a run opened with its recorded tasks equals one of the run rebuilt from its data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from market_metarl.backtest.runner import evaluate
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.rundir import read_run_json, write_run_json
from market_metarl.meta.runtasks import TASKS_FILE


@pytest.mark.parametrize(
    ("protocol", "names"),
    [("regime", ("adapted", "pooled", "hmm_switch")), ("rolling", ("adapted",))],
)
def test_recorded_and_rebuilt_tasks_give_the_same_backtest(
    syn_run: Path, tmp_path: Path, protocol: str, names: tuple[str, ...]
) -> None:
    """The run's own test tasks (no ``--data``); ``hmm_switch`` is fitted on its training data."""
    old = shutil.copytree(syn_run, tmp_path / "old")
    (old / TASKS_FILE).unlink()
    state = read_run_json(old)
    del state["tasks"]
    write_run_json(old, state)  # as written before runs recorded their tasks
    docs = []
    for run_dir in (syn_run, old):
        run = TrainedRun.open(run_dir)
        doc, _ = evaluate(
            run, None, protocol, seeds=1, every=10, n_boot=50, run_label="run", strategies=names
        )
        docs.append(json.dumps(doc, sort_keys=True, default=str))
    assert set(json.loads(docs[0])["strategies"]) >= set(names)
    assert docs[0] == docs[1]
