"""Stable-Baselines3 trains on the env (a smoke test of the Gymnasium contract)."""

from __future__ import annotations

import numpy as np
import pytest
from env_bars import random_walk_bars

from market_metarl.envs.spec import ActionKind, EnvSpec
from market_metarl.envs.trading_env import TradingEnv


@pytest.mark.parametrize("action", ["discrete", "continuous"])
def test_ppo_trains_2048_steps_and_acts_validly(action: ActionKind) -> None:
    import stable_baselines3 as sb3

    env = TradingEnv.from_bars(random_walk_bars(300, seed=4), EnvSpec(window=8, action=action))
    model = sb3.PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    obs, _ = env.reset(seed=1)
    for _ in range(20):
        act, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(
            act.astype(env.action_space.dtype) if action == "continuous" else int(act)
        )
        obs, _, terminated, truncated, _ = env.step(act)
        assert np.isfinite(obs).all()
        if terminated or truncated:
            obs, _ = env.reset()
