"""The batched protocols of gradient agents give the day-by-day path's positions.

A gradient agent adapts one support as a batch of one (``GradientAgent.adapt`` is
``adapt_many``), and batched matrix products give every support the same numbers whatever the
batch, so where the rollout is the same day-by-day ``forward_with`` (rolling, a policy that reads
its position: what paper trading replays) the two paths agree bit for bit. Elsewhere the rollout
is one batched product over many days, and against the one-day products of ``act`` the tolerance
is 1e-5 in weight, as it is between ``adapt`` and the ``nn.Linear`` adaptation it replaced.

Tolerance: 1e-5 in weight (weights are at most ``max_leverage`` = 1 here). The policy computes in
float32 (eps 1.2e-7); batched products sum in another order than ``nn.Linear``'s, so outputs
differ in their last bits, and each gradient step carries those differences on (up to 20 steps
here). On these short synthetic supports the gaps are a few 1e-7. They grow with the steps: on a
decade of GOOG (``benchmarks/backtest_speed.py``, before ``adapt`` became a batch of one) the
fine-tune's 10 steps differed by 1.9e-7 and the scratch fit's 50 steps from a random start by up
to 3.4e-5, so 1e-5 is a bound for these fixtures, not for every fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from backtest_helpers import synthetic_bars, write_csv

from market_metarl.backtest.markets import (
    FrozenAgent,
    Market,
    regime_markets,
    regime_spans,
    rolling_markets,
    schedule,
)
from market_metarl.meta.adapt import adapt, detached_copy
from market_metarl.meta.agents import GradientAgent, InnerLoop
from market_metarl.meta.batched import supports_of
from market_metarl.meta.contracts import Agent
from market_metarl.meta.rollout import mlp_loss
from market_metarl.meta.run import TrainedRun
from market_metarl.types import DataError

TOL = 1e-5
NAMES = ("adapted", "pooled", "finetune", "scratch", "zeroshot")


def _agent(run: TrainedRun, name: str, reads_position: bool) -> Agent:
    """The strategy's agent; scratch fits 20 steps; optionally made to read its held weight."""
    agent = run.agent("adapted" if name == "zeroshot" else name, 0)
    assert isinstance(agent, GradientAgent)
    if name == "scratch":
        agent.inner = InnerLoop(20, agent.inner.lr, agent.inner.max_grad_norm)
    if reads_position:
        agent.policy.input_mask.fill_(1.0)  # the run's policies mask it (position_input=false)
    return FrozenAgent(agent) if name == "zeroshot" else agent


def _markets(run: TrainedRun, tmp_path: Path, protocol: str) -> list[Market]:
    bars = synthetic_bars(seed=11, days=300)
    spec = write_csv(bars, tmp_path / "a.csv")
    if protocol == "rolling":
        return rolling_markets(run, spec, 5, 7)
    return regime_markets(run, spec, 5, 30, spans={"A": regime_spans(run, bars, "A", None)})


@pytest.mark.parametrize("reads_position", [False, True])
@pytest.mark.parametrize("protocol", ["rolling", "regime"])
def test_batched_schedule_equals_day_by_day(
    syn_run: Path, tmp_path: Path, protocol: str, reads_position: bool
) -> None:
    run = TrainedRun.open(syn_run)
    m = _markets(run, tmp_path, protocol)[0]
    got = {}
    for name in NAMES:
        old = schedule(_agent(run, name, reads_position), m, protocol, 5, 7, batched=False)  # type: ignore[arg-type]
        new = schedule(_agent(run, name, reads_position), m, protocol, 5, 7, batched=True)  # type: ignore[arg-type]
        assert np.abs(old).max() > 0.01, name  # the check compares real positions
        exact = protocol == "rolling" and reads_position
        np.testing.assert_allclose(new, old, rtol=0, atol=0 if exact else TOL, err_msg=name)
        got[name] = new
    # Adaptation moves the positions (far beyond the tolerance), so the test can tell paths apart.
    assert np.abs(got["adapted"] - got["zeroshot"]).max() > 100 * TOL
    assert np.abs(got["finetune"] - got["pooled"]).max() > 100 * TOL


def test_supports_are_the_windows_adapt_at_reads(syn_run: Path, tmp_path: Path) -> None:
    run = TrainedRun.open(syn_run)
    ep = _markets(run, tmp_path, "rolling")[0].view.episode
    rows, k = [10, 17, 40], 5
    stacked = supports_of(ep, rows, k)
    assert stacked.batch == 3 and stacked.days == k - 1
    for b, a in enumerate(rows):
        one = ep.window(a - k + 1, a)
        assert stacked.obs[b].equal(one.obs[0])
        assert stacked.opens[b].equal(one.opens[0]) and stacked.closes[b].equal(one.closes[0])
    with pytest.raises(DataError, match="needs 5 days of history"):
        supports_of(ep, [3], k)


@pytest.mark.parametrize("name", ["adapted", "finetune", "scratch"])
def test_adapt_equals_the_linear_adaptation_it_replaced(
    syn_run: Path, tmp_path: Path, name: str
) -> None:
    """The parameters of ``adapt`` (a batch of one) and of ``nn.Linear``-style steps agree."""
    run = TrainedRun.open(syn_run)
    ep = _markets(run, tmp_path, "rolling")[0].view.episode
    agent = _agent(run, name, reads_position=False)
    assert isinstance(agent, GradientAgent)
    agent.init()
    support = ep.window(40 - 5 + 1, 40)
    agent.adapt(support)
    lr = agent.inner.lr
    ref = adapt(
        detached_copy(agent.start),
        lambda p: mlp_loss(agent.policy, p, support),
        steps=agent.inner.steps,
        lr={k: v.detach() for k, v in lr.items()} if isinstance(lr, dict) else lr,
        first_order=True,
        max_grad_norm=agent.inner.max_grad_norm,
    )
    moved = max((agent.params[k] - agent.start[k]).abs().max().item() for k in ref)
    assert moved > 100 * TOL  # the steps changed the parameters
    for k, v in ref.items():
        np.testing.assert_allclose(agent.params[k].numpy(), v.detach().numpy(), rtol=0, atol=TOL)
