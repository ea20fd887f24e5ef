"""The torch batched env equals the numpy one on the same actions (CPU; CUDA by construction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from env_bars import random_walk_bars

from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.torch_env import TorchBatchedTradingEnv
from market_metarl.envs.vector_env import BatchedTradingEnv
from market_metarl.types import CostSpec

COSTS = CostSpec(fee_bps=2.0, slippage_bps=3.0, min_fee=2.0, impact_coef=0.1, borrow_bps_annual=50)


@pytest.mark.parametrize(
    "spec",
    [
        EnvSpec(window=6, reward="differential_sharpe", include_time=True),
        EnvSpec(
            window=4,
            action="continuous",
            max_leverage=2.0,
            reward="drawdown_penalised",
            max_drawdown=0.1,
        ),
    ],
    ids=["discrete-dsr", "continuous-drawdown"],
)
def test_torch_env_equals_numpy_env(spec: EnvSpec) -> None:
    bars = [random_walk_bars(90 + 15 * b, seed=b, vol=0.03) for b in range(5)]
    ref = BatchedTradingEnv.from_bars(bars, spec, COSTS)
    env = TorchBatchedTradingEnv(BatchedTradingEnv.from_bars(bars, spec, COSTS), "cpu")
    obs_ref, _ = ref.reset(seed=0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs.numpy(), obs_ref)
    ref.action_space.seed(2)
    ends = 0
    for k in range(300):
        actions = ref.action_space.sample()
        o_r, r_r, te_r, tr_r, i_r = ref.step(actions)
        o, r, te, tr, i = env.step(torch.as_tensor(actions))
        np.testing.assert_allclose(o.numpy(), o_r, rtol=1e-7, atol=0, err_msg=f"step {k}")
        np.testing.assert_allclose(r.numpy(), r_r, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(i["equity"].numpy(), i_r["equity"], rtol=1e-12)
        np.testing.assert_allclose(i["cost"].numpy(), i_r["cost"], rtol=1e-12, atol=1e-9)
        assert te.tolist() == te_r.tolist() and tr.tolist() == tr_r.tolist()
        assert (i["date"].numpy() == i_r["date"].view(np.int64)).all()
        ends += int((te_r | tr_r).sum())
    assert ends >= 5


def test_replicas_share_the_market_and_random_starts_stay_in_range() -> None:
    spec = EnvSpec(window=4, random_start=True)
    base = BatchedTradingEnv.from_bars([random_walk_bars(120, seed=1), random_walk_bars(100, seed=2)], spec)  # fmt: skip
    env = TorchBatchedTradingEnv(base, "cpu", replicas=3)
    assert env.num_envs == 6 and env.task.tolist() == [0, 1, 0, 1, 0, 1]
    env.reset(seed=0)
    first, last = env.first[env.task], env.last[env.task]
    assert bool(((env.t >= first) & (env.t <= first + (last - first) // 2)).all())
    obs, reward, *_ = env.step(torch.full((6,), 2))
    assert obs.shape == (6, base.observations.dim) and reward.dtype == torch.float64
