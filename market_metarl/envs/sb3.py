"""Stable-Baselines3 trains on the batched env: :class:`SB3BatchedVecEnv`, an SB3 ``VecEnv``.

SB3's vector envs reset a finished env inside the same ``step`` (its first observation is
returned, the last one goes to ``infos[i]["terminal_observation"]``, and a time-limit end is
flagged ``infos[i]["TimeLimit.truncated"]``). The batched envs autoreset on the *next* step
(Gymnasium's NEXT_STEP mode), so the adapter resets the finished books at once through
``reset(options={"reset_mask": done})`` and reports them the SB3 way.

stable-baselines3 is an optional dependency (the ``dev`` extra installs it): this module imports
it, so import this module only where SB3 is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from market_metarl.envs.vector_env import BatchedTradingEnv


class SB3BatchedVecEnv(VecEnv):
    """A :class:`BatchedTradingEnv` (or ``FusedTradingEnv``) as an SB3 ``VecEnv``.

    Args:
        env: The batched env; its B tasks are SB3's ``num_envs``.
        info_keys: Keys of the batched env's infos copied into each env's info dict (e.g.
            ``("equity",)``); none by default, as SB3 reads only its own keys.
    """

    def __init__(self, env: BatchedTradingEnv, info_keys: Sequence[str] = ()) -> None:
        """Wrap ``env`` with its single-task spaces."""
        self.env = env
        self.info_keys = tuple(info_keys)
        self._actions: np.ndarray | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> np.ndarray:
        """Reset every task (with the seeds given by :meth:`seed`, if any) and return observations."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, _ = self.env.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for :meth:`step_wait`."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every task; reset the finished ones at once (SB3's convention).

        Returns:
            ``(obs, rewards float32, dones, infos)``: a finished task's ``obs`` row is the first
            observation of its next episode; its final one is in ``terminal_observation``.
        """
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        obs, reward, terminated, truncated, infos = self.env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        out: list[dict[str, Any]] = [{k: infos[k][b] for k in self.info_keys} for b in range(self.num_envs)]  # fmt: skip
        if dones.any():
            finished = np.flatnonzero(dones)
            for b in finished:
                out[b]["terminal_observation"] = obs[b].copy()
                out[b]["TimeLimit.truncated"] = bool(truncated[b] and not terminated[b])
            fresh, _ = self.env.reset(options={"reset_mask": dones})
            obs = obs.copy()
            obs[finished] = fresh[finished]
        return obs, reward.astype(np.float32), dones, out

    def close(self) -> None:
        """Close the batched env."""
        self.env.close()

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The batched env's attribute, once per index (the tasks share one env object)."""
        value = getattr(self.env, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute of the batched env (shared by every task)."""
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of the batched env once, reported for each index."""
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """False for every task: the batched env is not a ``gymnasium.Wrapper``."""
        return [False for _ in self._indices(indices)]
