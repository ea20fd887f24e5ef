"""SB3 trains on the batched env through SB3BatchedVecEnv (SB3's same-step autoreset)."""

from __future__ import annotations

import numpy as np
import pytest
from env_bars import random_walk_bars

from market_metarl.envs.fused import FusedTradingEnv
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.vector_env import BatchedTradingEnv

pytest.importorskip("stable_baselines3")

from stable_baselines3.common.vec_env import VecCheckNan

from market_metarl.envs.sb3 import SB3BatchedVecEnv


def _venv(n_days: int = 90) -> SB3BatchedVecEnv:
    bars = [random_walk_bars(n_days + 10 * b, seed=b) for b in range(4)]
    return SB3BatchedVecEnv(BatchedTradingEnv.from_bars(bars, EnvSpec(window=4)), ("equity",))


def test_vec_env_contract_and_same_step_autoreset() -> None:
    venv = VecCheckNan(_venv(), raise_exception=True)  # raises on NaN/inf in obs or rewards
    obs = np.asarray(venv.reset())
    first = obs.copy()
    assert obs.shape == (4, _venv().env.observations.dim) and obs.dtype == np.float32
    finished = 0
    for _ in range(80):
        actions = np.array([venv.action_space.sample() for _ in range(4)])
        stepped, rewards, dones, infos = venv.step(actions)
        obs = np.asarray(stepped)
        assert rewards.dtype == np.float32 and rewards.shape == (4,) and len(infos) == 4
        assert all(venv.observation_space.contains(o) for o in obs)
        for b in np.flatnonzero(dones).tolist():
            finished += 1
            assert infos[b]["TimeLimit.truncated"]  # the episodes run to the end of the task
            assert infos[b]["terminal_observation"].shape == obs[b].shape
            np.testing.assert_array_equal(obs[b], first[b])  # already the next episode's first
        assert all("equity" in i for i in infos)
    assert finished >= 4


def test_ppo_learns_a_few_hundred_steps_on_the_fused_env() -> None:
    import stable_baselines3 as sb3

    bars = [random_walk_bars(100, seed=b) for b in range(8)]
    venv = SB3BatchedVecEnv(FusedTradingEnv.from_bars(bars, EnvSpec(window=4), kernel="numpy"))
    model = sb3.PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (8,) and set(actions.tolist()) <= {0, 1, 2}
