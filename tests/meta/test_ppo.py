"""RL^2 under PPO: GAE against closed forms, the clipped objective, and a tiny-budget real run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from meta_helpers import small_config

from market_metarl.meta.agents import RL2Agent
from market_metarl.meta.algos.rl2 import RL2Learner
from market_metarl.meta.algos.rl2_ppo import GRUActorCritic, RL2PPOLearner, clipped_surrogate, gae
from market_metarl.meta.episodes import Episode
from market_metarl.meta.evaluation import evaluate_adaptation
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.policies import GRUPolicy, PolicySpec
from market_metarl.meta.rollout import PNL_SCALE, episode_log_returns
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.rundir import Shapes, load_checkpoint
from market_metarl.meta.trainer import build_learner, train
from market_metarl.types import ConfigError


def _ppo_exp(**ppo: object) -> Experiment:
    return Experiment.from_config(small_config(rl2_ppo={"batch": 8, **ppo}))


# -- GAE ------------------------------------------------------------------------------------------


def _random_trial(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    values = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    last = torch.randn(3, generator=gen, dtype=torch.float64)
    return rewards, values, last


def test_gae_with_lambda_one_is_discounted_return_minus_value() -> None:
    rewards, values, last = _random_trial()
    gamma = 0.9
    adv, returns = gae(rewards, values, last, gamma, 1.0)
    days = rewards.shape[1]
    for t in range(days):
        ret = (
            sum(gamma**k * rewards[:, t + k] for k in range(days - t)) + gamma ** (days - t) * last
        )
        torch.testing.assert_close(adv[:, t], ret - values[:, t])
        torch.testing.assert_close(returns[:, t], ret)


def test_gae_with_lambda_zero_is_the_one_step_td_error() -> None:
    rewards, values, last = _random_trial(1)
    gamma = 0.95
    adv, _ = gae(rewards, values, last, gamma, 0.0)
    next_values = torch.cat([values[:, 1:], last[:, None]], 1)
    torch.testing.assert_close(adv, rewards + gamma * next_values - values)


def test_gae_three_steps_by_hand() -> None:
    # gamma 0.9, lambda 0.5: deltas 1 + 0.9 - 0.5 = 1.4, 2 + 1.35 - 1 = 2.35, 3 + 1.8 - 1.5 = 3.3;
    # A2 = 3.3, A1 = 2.35 + 0.45 * 3.3 = 3.835, A0 = 1.4 + 0.45 * 3.835 = 3.12575
    adv, returns = gae(
        torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64),
        torch.tensor([[0.5, 1.0, 1.5]], dtype=torch.float64),
        torch.tensor([2.0], dtype=torch.float64),
        gamma=0.9,
        lam=0.5,
    )
    expected = torch.tensor([[3.12575, 3.835, 3.3]], dtype=torch.float64)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(returns, expected + torch.tensor([[0.5, 1.0, 1.5]]).double())


# -- the clipped objective ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "adv", "flat"),
    [
        (1.5, 1.0, True),  # pushed up past 1 + clip by a positive advantage: clipped
        (0.5, -1.0, True),  # pushed down past 1 - clip by a negative advantage: clipped
        (0.5, 1.0, False),  # below the range but the advantage wants it up: still learns
        (1.5, -1.0, False),  # above the range but the advantage wants it down: still learns
        (1.1, 1.0, False),  # inside the range
    ],
)
def test_clipped_objective_gradient_vanishes_only_on_the_clipped_side(
    ratio: float, adv: float, flat: bool
) -> None:
    logp_old = torch.tensor([-1.0], dtype=torch.float64)
    logp = (logp_old + math.log(ratio)).requires_grad_(True)
    loss = clipped_surrogate(logp, logp_old, torch.tensor([adv], dtype=torch.float64), clip=0.2)
    (grad,) = torch.autograd.grad(loss, logp)
    if flat:
        assert grad.item() == 0.0
    else:
        assert grad.item() == pytest.approx(-ratio * adv)


# -- the learner ----------------------------------------------------------------------------------


def _small_learner(exp: Experiment) -> tuple[RL2PPOLearner, Episode]:
    pool = exp.pool("train")
    learner = build_learner("rl2_ppo", exp, Shapes.of(pool), seed=0, observations=None)
    assert isinstance(learner, RL2PPOLearner)
    episode = pool.sample(4, exp.train.window_days, np.random.default_rng(0))
    return learner, episode


def test_rl2_and_rl2_ppo_are_two_registered_algorithms() -> None:
    exp = _ppo_exp()
    pool = exp.pool("train")
    assert isinstance(build_learner("rl2", exp, Shapes.of(pool), 0), RL2Learner)
    assert isinstance(build_learner("rl2_ppo", exp, Shapes.of(pool), 0), RL2PPOLearner)


def test_rollout_rewards_are_the_one_accounting_and_recomputation_matches() -> None:
    learner, ep = _small_learner(_ppo_exp())
    roll = learner.rollout(ep)
    weights = learner.policy.spec.max_leverage * torch.tanh(roll["actions"])
    expected = episode_log_returns(ep, weights.double()) * PNL_SCALE
    torch.testing.assert_close(roll["rewards"].double(), expected, rtol=1e-5, atol=1e-6)
    # the sequences recomputed from h0 give the rollout's log-probabilities and values (ratio 1)
    with torch.no_grad():
        means, values = learner.policy.sequence(roll["x"])
        logp = learner.policy.distribution(means).log_prob(roll["actions"]).sum(-1)
    torch.testing.assert_close(logp, roll["logp"])
    torch.testing.assert_close(values, roll["values"])


def test_actor_critic_acts_like_a_gru_policy() -> None:
    torch.manual_seed(0)
    net = GRUActorCritic(5, 1, PolicySpec(hidden=8))
    assert isinstance(net, GRUPolicy)
    h = net.initial_state(2)
    w, h2 = net(torch.randn(2, 5), torch.zeros(2, 1), torch.zeros(2), h)
    assert w.shape == (2, 1) and h2.shape == (2, 8)
    assert bool((w.abs() <= 1.0).all())


def test_a_short_ppo_run_checkpoints_resumes_and_stays_finite(tmp_path: Path) -> None:
    full = _ppo_exp()
    train(full, "rl2_ppo", tmp_path / "full", seed=1)
    rows = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    losses = [
        float(r["value"]) for r in rows if r["learner"] == "rl2_ppo" and r["metric"] == "loss"
    ]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    payload = load_checkpoint(tmp_path / "full" / "checkpoints" / "rl2_ppo.pt")
    assert set(payload["agent"]) == {"policy"} and set(payload["training"]) == {"opt", "rng"}
    # interrupted after the first checkpoint, then resumed: the same parameters at the end
    interrupted = tmp_path / "resumed"
    train(_ppo_exp(iterations=2), "rl2_ppo", interrupted, seed=1)
    state = json.loads((interrupted / "run.json").read_text())
    state["config"] = json.loads((tmp_path / "full" / "run.json").read_text())["config"]
    state["iterations"] = {"rl2_ppo": 2}
    (interrupted / "run.json").write_text(json.dumps(state))
    (interrupted / "checkpoints" / "pooled.pt").unlink()
    train(full, "rl2_ppo", interrupted, seed=1, resume=True)
    a = payload["agent"]["policy"]
    b = load_checkpoint(interrupted / "checkpoints" / "rl2_ppo.pt")["agent"]["policy"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_ppo_agent_adapts_through_rl2agent_and_evaluate_adaptation(tmp_path: Path) -> None:
    exp = _ppo_exp()
    train(exp, "rl2_ppo", tmp_path / "run", seed=0)
    agent = TrainedRun.open(tmp_path / "run").agent("adapted")
    assert isinstance(agent, RL2Agent)
    assert isinstance(agent.policy, GRUActorCritic)
    episode = exp.pool("test").episode([0, 1], exp.train.window_days)
    results = evaluate_adaptation(agent, episode, exp.train.adapt_days, exp.train.horizon)
    assert len(results) == 2
    for r in results:
        assert math.isfinite(r.post_sharpe) and math.isfinite(r.pre_sharpe)
        assert np.abs(r.post_weights).max() <= 1.0


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"clip": 0.0}, "rl2_ppo.clip must be > 0"),
        ({"gae_lambda": 1.5}, "rl2_ppo.gae_lambda must be in"),
        ({"minibatches": 100}, "rl2_ppo.minibatches"),
        ({"entropy": -0.1}, "rl2_ppo.entropy must be >= 0"),
    ],
)
def test_ppo_settings_are_validated(override: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Experiment.from_config(small_config(rl2_ppo=override))


@pytest.mark.parametrize(
    ("flat", "match"),
    [
        ({"rl2_trainer": "ppo"}, "--algo rl2_ppo"),
        ({"ppo_clip": 0.1}, r"\[train.rl2_ppo\]"),
        ({"ppo_lambda": 0.5}, "gae_lambda"),
    ],
)
def test_old_flat_ppo_keys_say_where_they_went(flat: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Experiment.from_config(small_config(**flat))
