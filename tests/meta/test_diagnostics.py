"""Task-inference diagnostics: the probe's known answers, silhouettes, task states and the plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from market_metarl.meta.agents import ConstantAgent, RL2Agent
from market_metarl.meta.diagnostics import (
    LinearProbe,
    autocorrelation_signs,
    plot_probe_curves,
    probe_accuracy,
    sign_statistic_accuracy,
    silhouette,
    task_states,
)
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.policies import GRUPolicy, PolicySpec


def test_probe_is_at_chance_on_random_latents_and_perfect_on_the_true_sign() -> None:
    rng = np.random.default_rng(0)
    y_train, y_test = rng.choice([-1, 1], 400), rng.choice([-1, 1], 2000)
    noise_train, noise_test = rng.normal(size=(400, 8)), rng.normal(size=(2000, 8))
    assert abs(probe_accuracy(noise_train, y_train, noise_test, y_test) - 0.5) < 0.05
    # the true sign, scaled and shifted, among noise dimensions
    x_train = np.column_stack([noise_train, 3.0 * y_train + 1.0])
    x_test = np.column_stack([noise_test, 3.0 * y_test + 1.0])
    assert probe_accuracy(x_train, y_train, x_test, y_test) == 1.0


def test_probe_handles_several_labels_and_rejects_one() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.array(["bull", "crash", "chop"]), 100)
    centres = {"bull": [3, 0], "crash": [-3, 0], "chop": [0, 3]}
    x = np.array([centres[lab] for lab in labels]) + rng.normal(0, 0.5, (300, 2))
    assert LinearProbe().fit(x, labels).accuracy(x, labels) > 0.98
    with pytest.raises(ValueError, match="two classes"):
        LinearProbe().fit(x, np.zeros(300))


def test_silhouette_separated_and_mixed_clusters() -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 50)
    tight = np.where(labels[:, None] == 0, -5.0, 5.0) + rng.normal(0, 0.3, (100, 3))
    assert silhouette(tight, labels) > 0.8
    assert abs(silhouette(rng.normal(size=(100, 3)), labels)) < 0.1


def test_task_states_of_an_rl2_agent_and_a_stateless_one(small_exp: Experiment) -> None:
    pool = small_exp.pool("test")
    ep = pool.episode([0, 1, 2], small_exp.train.window_days)
    torch.manual_seed(0)
    agent = RL2Agent(GRUPolicy(pool.obs_dim, 1, PolicySpec(hidden=6)))
    prior = task_states(agent, ep, 1)
    after = task_states(agent, ep, 10)
    # the whole recurrent state: 6 hidden units, the last weight and the last return
    assert prior.shape == after.shape == (3, 8)
    assert np.allclose(prior, 0.0) and not np.allclose(after, 0.0)
    with pytest.raises(TypeError, match="no task state"):
        task_states(ConstantAgent(1.0), ep, 5)


def test_bayes_reference_improves_with_days(small_exp: Experiment) -> None:
    tasks = small_exp.tasks.split("train")
    ep = small_exp.pool("train").episode(list(range(len(tasks))), small_exp.train.window_days)
    labels = autocorrelation_signs(tasks)
    short = sign_statistic_accuracy(ep, labels, 3, return_index=1)
    long = sign_statistic_accuracy(ep, labels, 60, return_index=1)
    assert long > 0.95 and long > short


def test_probe_plot_is_a_png(tmp_path: Path) -> None:
    curves = {"pearl": {1: 0.5, 5: 0.8, 10: 0.9}, "rl2": {1: 0.5, 5: 0.7, 10: 0.85}}
    path = plot_probe_curves(curves, tmp_path / "probe.png", reference={1: 0.5, 10: 0.91})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
