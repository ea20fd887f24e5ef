"""The vectorised MAML meta-batch computes what the per-task pieces compute.

Tolerance: float32 parameters, compared with ``atol = rtol = 1e-5``. The two paths run the same
operations, but the vectorised one sums the tasks' gradients inside autograd (the backward of the
expand) and reduces batched matrix products in another order than 16 separate calls: the last
bits of float32 sums differ (~1e-7 relative), and a few Adam steps of 3e-3 carry such differences
into parameters at the 1e-7..1e-6 level (measured: under 5e-7 after four iterations on
``envs/default.toml``, under 1e-7 here). 1e-5 is far below any real change (an outer step moves
a weight by ~3e-3). The logged losses are compared at 1e-4 relative: after two inner steps they
amplify rounding more than the parameters do (the cost's ``|w - u|`` has a kink).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from meta_helpers import small_config

from market_metarl.meta.adapt import call, clip_norm, params_of
from market_metarl.meta.algos.maml import MAMLLearner
from market_metarl.meta.experiment import Experiment, TrainConfig
from market_metarl.meta.policies import PolicySpec, seeded_mlp
from market_metarl.meta.rundir import Shapes
from market_metarl.meta.trainer import build_learner

TOL = 1e-5
"""``atol`` and ``rtol`` of the parameters (see the module docstring)."""


def _with_vectorised(exp: Experiment, vectorised: bool) -> TrainConfig:
    """``exp``'s ``[train]`` with ``[train.maml] vectorised`` set."""
    tables = dict(exp.train.tables)
    tables["maml"] = replace(exp.train.of("maml"), vectorised=vectorised)
    return replace(exp.train, tables=tables)


@pytest.mark.parametrize(
    ("spec", "n_assets"),
    [
        (PolicySpec(hidden=6), 3),
        (PolicySpec(hidden=6, layers=2, long_only=True, max_leverage=1.5), 3),
        (PolicySpec(hidden=6, head="categorical", levels=(-1.0, 0.0, 0.5, 1.0)), 1),
        (PolicySpec(hidden=6, head="gaussian"), 2),
    ],
)
def test_forward_per_task_is_forward_with_each_tasks_parameters(
    spec: PolicySpec, n_assets: int
) -> None:
    gen = torch.Generator().manual_seed(0)
    policy = seeded_mlp(7, n_assets, spec, seed=1)
    policy.norm.fit(torch.randn(50, 7, generator=gen) * 3 + 1, keep=slice(0, n_assets))
    policy.mask_inputs(slice(0, 1))
    tasks = 4
    params = {
        k: v.detach() + 0.1 * torch.randn(tasks, *v.shape, generator=gen)
        for k, v in params_of(policy).items()
    }
    for obs in (torch.randn(tasks, 7, generator=gen), torch.randn(tasks, 5, 7, generator=gen)):
        out = policy.forward_per_task(params, obs)
        assert out.shape == (*obs.shape[:-1], n_assets)
        for b in range(tasks):
            expected = call(policy, {k: v[b] for k, v in params.items()}, obs[b])
            torch.testing.assert_close(out[b], expected, atol=1e-6, rtol=1e-6)


def test_per_task_clipping_clips_each_task_alone() -> None:
    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.1, 1.0, 30.0])  # one task under the limit, two over it
    grads = {
        "w": torch.randn(3, 4, 2, generator=gen) * scale.view(-1, 1, 1),
        "b": torch.randn(3, 5, generator=gen) * scale.view(-1, 1),
    }
    clipped = clip_norm(grads, 2.0, per_task=True)
    for b in range(3):
        alone = clip_norm({k: v[b] for k, v in grads.items()}, 2.0)
        for k in grads:
            torch.testing.assert_close(clipped[k][b], alone[k])
    norms = torch.sqrt(torch.stack([(g**2).flatten(1).sum(1) for g in clipped.values()]).sum(0))
    assert norms[0] < 1.0 and torch.allclose(norms[1:], torch.tensor(2.0))


def _learners(
    train: dict[str, Any] | None = None, **maml: Any
) -> tuple[Experiment, MAMLLearner, MAMLLearner]:
    """A per-task and a vectorised learner from the same seed, with costs and position feedback.

    The leverage of 3 makes one task's inner gradient norm exceed the clip of 10 (~14) and the
    others stay under it (~2-4), so clipping each task alone is tested too. ``train`` sets
    ``[train]`` keys (a volatility target also turns the ``vol`` feature on).
    """
    train = train or {}
    cfg = small_config(
        position_input=True, adapt_days=6, horizon=20, maml={"batch": 5, **maml}, **train
    )
    if train.get("vol_target"):
        cfg["features"]["vol_window"] = 5
        cfg["data"]["warmup_days"] = 5
    cfg["costs"] = {"fee_bps": 5.0, "slippage_bps": 5.0, "borrow_bps_annual": 50.0}
    cfg["env"]["max_leverage"] = 3.0
    exp = Experiment.from_config(cfg)
    pool = exp.pool("train")
    learners = []
    for vectorised in (False, True):
        variant = replace(exp, train=_with_vectorised(exp, vectorised))
        learner = build_learner("maml", variant, Shapes.of(pool), 7, pool.all_observations())
        assert isinstance(learner, MAMLLearner) and learner.vectorised == vectorised
        learners.append(learner)
    return exp, learners[0], learners[1]


def _agent_tensors(learner: MAMLLearner) -> dict[str, torch.Tensor]:
    state = learner.agent_state()
    return {f"{part}.{k}": v for part in ("policy", "log_lr") for k, v in state[part].items()}


@pytest.mark.parametrize(
    "maml",
    [
        {},  # second order, learned step sizes
        {"first_order": True},
        {"inner_steps": 2, "learn_inner_lr": False, "inner_lr": 0.2},
        {"train": {"objective": "sharpe", "vol_target": 0.15, "turnover_bps": 5.0}},
        {"train": {"objective": "mean_variance", "risk_aversion": 4.0}, "inner_steps": 2},
    ],
)
def test_vectorised_meta_batch_trains_the_per_task_parameters(maml: dict[str, Any]) -> None:
    exp, per_task, vectorised = _learners(**maml)
    pool, rng = exp.pool("train"), np.random.default_rng(0)
    for _ in range(3):
        episode = pool.sample(per_task.batch, exp.train.window_days, rng)
        a, b = per_task.step(episode), vectorised.step(episode)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-7), key
    before = _agent_tensors(_learners(**maml)[1])
    ta, tb = _agent_tensors(per_task), _agent_tensors(vectorised)
    assert ta.keys() == tb.keys()
    moved = 0.0
    for key in ta:
        assert torch.isfinite(ta[key]).all(), key
        diff = float((tb[key] - ta[key]).abs().max())
        assert torch.allclose(tb[key], ta[key], atol=TOL, rtol=TOL), f"{key}: {diff:.2e}"
        moved = max(moved, float((ta[key] - before[key]).abs().max()))
    assert moved > 1e-3  # the comparison is between trained parameters, not two fresh starts


def test_the_score_function_estimator_keeps_the_per_task_path() -> None:
    cfg = small_config(estimator="score_function", maml={"batch": 3})
    exp = Experiment.from_config(cfg)
    pool = exp.pool("train")
    per_task, vectorised = (
        build_learner("maml", replace(exp, train=_with_vectorised(exp, v)), Shapes.of(pool), 3)
        for v in (False, True)
    )
    assert isinstance(per_task, MAMLLearner) and isinstance(vectorised, MAMLLearner)
    episode = pool.sample(3, exp.train.window_days, np.random.default_rng(1))
    assert per_task.step(episode) == vectorised.step(episode)
    ta, tb = _agent_tensors(per_task), _agent_tensors(vectorised)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
