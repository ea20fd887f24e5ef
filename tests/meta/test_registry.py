"""The algorithm registry and the Learner contract: every registered algorithm trains the same way,
deterministically, and the refactor into ``meta/algos/`` left every trained parameter as it was."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from meta_helpers import small_config

from market_metarl.meta.contracts import Agent, Learner
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.registry import BUILTIN, algorithm_names, get_algorithm
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.rundir import checkpoint_path, load_checkpoint
from market_metarl.meta.trainer import train
from market_metarl.types import ConfigError

TINY: dict[str, dict[str, Any]] = {
    "maml": {"maml": {"vectorised": False}},
    "rl2": {},
    "rl2_ppo": {"rl2_ppo": {"batch": 8}},
    "pooled": {},
    "model_based": {"model_based": {"iterations": 4}},
    "pearl": {"pearl": {"iterations": 4}},
}
"""Per-algorithm overrides that keep each run at 4 iterations on the small synthetic config.

MAML is pinned to its per-task path (the code the digests were recorded with); its vectorised
default has a digest of its own."""

DIGESTS = {
    "maml": "c8e413f33e6964d1",
    "maml vectorised": "c8e413f33e6964d1",
    "maml vectorised, position input": "a8670b6eafed86ee",
    "rl2": "5be441a7a472f936",
    "rl2_ppo": "7c51df38717b61b4",
    "model_based": "7d01036f2f6dc3ae",
    "pearl": "bcdd6c81d3ffd7f2",
    "pooled": "82ad76e52a4475b7",
    "pooled alone": "27e65db4fc507c44",
}
"""Digests of the trained parameters (seed 0, :data:`TINY`), recorded with the code before the
algorithms moved into ``meta/algos/`` (then ``rl2_ppo`` was ``rl2`` with ``rl2_trainer = "ppo"``).
The pooled twin trained second (seed path 1) differs from a pooled-only run (seed path 0).
MAML's vectorised path rounds to the per-task digest here (the paths agree to ~1e-7); the digest
with ``position_input`` (its per-day loop) was recorded when that path was added, and the per-task
path rounds to it too."""


def params_digest(agent_part: dict[str, dict[str, torch.Tensor]]) -> str:
    """SHA-256 of an agent part's tensors rounded to 6 decimals (robust to the last bits)."""
    h = hashlib.sha256()
    flat = {f"{part}.{k}": v for part, table in agent_part.items() for k, v in table.items()}
    for name in sorted(flat):
        h.update(name.encode())
        h.update(np.round(flat[name].detach().double().numpy(), 6).tobytes())
    return h.hexdigest()[:16]


def test_every_builtin_is_registered_and_its_module_defines_it() -> None:
    assert set(algorithm_names()) >= set(BUILTIN) and set(TINY) == set(BUILTIN)
    for name in BUILTIN:
        algorithm = get_algorithm(name)
        assert algorithm.name == name
        assert algorithm.config().__class__ is algorithm.config  # every field has a default


@pytest.mark.parametrize("algo", list(BUILTIN))
def test_each_algorithm_trains_deterministically_with_its_parameters_unchanged(
    algo: str, tmp_path: Path
) -> None:
    exp = Experiment.from_config(small_config(**TINY[algo]))
    for name in ("a", "b"):
        train(exp, algo, tmp_path / name, seed=0)
    learners = [algo] if algo == "pooled" else [algo, "pooled"]
    for learner in learners:
        parts = [
            load_checkpoint(checkpoint_path(tmp_path / n, learner), learner) for n in ("a", "b")
        ]
        assert params_digest(parts[0]["agent"]) == params_digest(parts[1]["agent"])
        key = "pooled alone" if algo == "pooled" else learner
        assert params_digest(parts[0]["agent"]) == DIGESTS[key], learner
    run = TrainedRun.open(tmp_path / "a")
    learner_obj = run.learner(algo)
    assert isinstance(learner_obj, Learner)
    agent = run.agent("adapted")
    assert isinstance(agent, Agent)
    episode = exp.pool("test").episode([0], exp.train.window_days)
    agent.init()
    agent.adapt(episode.window(0, exp.train.adapt_days - 1))
    weights = agent.act(episode.obs[0, exp.train.adapt_days - 1].numpy())
    assert weights.shape == (1,) and np.isfinite(weights).all()
    assert all(isinstance(v, np.ndarray) for v in agent.task_state().values())


@pytest.mark.parametrize("position_input", [False, True])
def test_vectorised_maml_the_default_trains_its_recorded_parameters(
    position_input: bool, tmp_path: Path
) -> None:
    exp = Experiment.from_config(
        small_config(position_input=position_input, pooled={"iterations": 1})
    )
    assert exp.train.of("maml").vectorised
    train(exp, "maml", tmp_path / "run", seed=0)
    part = load_checkpoint(checkpoint_path(tmp_path / "run", "maml"), "maml")
    key = "maml vectorised, position input" if position_input else "maml vectorised"
    assert params_digest(part["agent"]) == DIGESTS[key]


def test_a_checkpoint_splits_agent_and_training_state(tmp_path: Path) -> None:
    exp = Experiment.from_config(small_config())
    train(exp, "maml", tmp_path / "run", seed=0)
    payload = load_checkpoint(checkpoint_path(tmp_path / "run", "maml"), "maml")
    assert set(payload["agent"]) == {"policy", "log_lr"}
    assert set(payload["training"]) == {"opt", "gen"}


@pytest.mark.parametrize(
    ("flat", "new"),
    [
        ("meta_batch", r"\[train.maml\]"),
        ("rl2_hidden", r"\[train.rl2\]"),
        ("pooled_iterations", r"\[train.pooled\]"),
        ("finetune_lr", r"\[train.pooled\]"),
        ("mb_risk_aversion", r"\[train.model_based\]"),
        ("pearl_latent", r"\[train.pearl\]"),
    ],
)
def test_old_flat_keys_name_their_new_table(flat: str, new: str) -> None:
    with pytest.raises(ConfigError, match=f"train.{flat} moved.*{new}"):
        Experiment.from_config(small_config(**{flat: 1}))


def test_unknown_algorithms_and_keys_of_a_table_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown algorithm 'varibad'; valid: maml, rl2"):
        Experiment.from_config(small_config(algo="varibad"))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) train.maml.batchsize"):
        Experiment.from_config(small_config(maml={"batchsize": 4}))


def test_the_registry_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from market_metarl.meta.registry import algorithm_names, check_name\n"
        "assert 'maml' in algorithm_names() and check_name('pearl') == 'pearl'\n"
        "assert 'torch' not in sys.modules, 'the registry imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
