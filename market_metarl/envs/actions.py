"""The action map: from an agent's action to target weights. Stateless.

- ``discrete``: action ``k`` picks ``levels[k]``, a target weight clipped to
  ``[-max_leverage, max_leverage]``; ``long_only`` drops the negative levels (one asset only).
- ``continuous``: a Box of N target weights, ``[-max_leverage, max_leverage]`` each
  (``[0, max_leverage]`` when ``long_only``); out-of-range values are clipped, and when the gross
  exposure ``sum_i |w_i|`` exceeds ``max_leverage`` all weights are scaled down to it (no softmax:
  the rest of the equity is cash, which may be negative only through leverage).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from market_metarl.envs.spec import EnvSpec
from market_metarl.types import ConfigError


class ActionMap:
    """Maps actions to target weights for ``n_assets`` assets.

    Args:
        spec: The env settings (``action``, ``levels``, ``max_leverage``, ``long_only``).
        n_assets: Number of assets (discrete actions need exactly one).
    """

    def __init__(self, spec: EnvSpec, n_assets: int = 1) -> None:
        """Build the action space; discrete levels are clipped to the allowed weight range.

        Raises:
            ConfigError: Discrete actions asked for more than one asset.
        """
        self.kind = spec.action
        self.n_assets = int(n_assets)
        self.max_leverage = float(spec.max_leverage)
        self.low = 0.0 if spec.long_only else -self.max_leverage
        if self.kind == "discrete":
            if self.n_assets != 1:
                raise ConfigError(
                    f"env.action='discrete' needs one asset, got {self.n_assets}; "
                    "use env.action='continuous' for a portfolio"
                )
            kept = [lv for lv in spec.levels if not (spec.long_only and lv < 0)]
            self.levels = tuple(float(np.clip(lv, self.low, self.max_leverage)) for lv in kept)
            self._space: gym.spaces.Space = gym.spaces.Discrete(len(self.levels))
        else:
            self.levels = ()
            self._space = gym.spaces.Box(
                np.float32(self.low),
                np.float32(self.max_leverage),
                shape=(self.n_assets,),
                dtype=np.float32,
            )

    @property
    def space(self) -> gym.spaces.Space:
        """``Discrete(len(levels))`` or ``Box(low, max_leverage, (N,), float32)``."""
        return self._space

    def to_weight(self, action: object) -> np.ndarray:
        """Target weights ``(N,)`` (float64) of one action."""
        if self.kind == "discrete":
            return np.array([self.levels[int(action)]])  # type: ignore[call-overload]
        w = np.clip(
            np.asarray(action, dtype=np.float64).reshape(self.n_assets), self.low, self.max_leverage
        )
        gross = np.abs(w).sum()
        if gross > self.max_leverage:
            w = w * (self.max_leverage / gross)
        return w

    def to_weight_scalar(self, action: object) -> float:
        """The target weight of one action for one asset, as a Python float (fast path)."""
        if self.kind == "discrete":
            return self.levels[int(action)]  # type: ignore[call-overload]
        value = float(np.asarray(action).reshape(-1)[0])
        return min(max(value, self.low), self.max_leverage)

    def to_weights(self, actions: np.ndarray) -> np.ndarray:
        """Target weights ``(B, N)`` of a batch of actions (``(B,)`` ints or ``(B, N)`` floats)."""
        if self.kind == "discrete":
            table = np.asarray(self.levels, dtype=np.float64)
            return table[np.asarray(actions, dtype=np.int64).reshape(-1)][:, None]
        w = np.clip(
            np.asarray(actions, dtype=np.float64).reshape(-1, self.n_assets),
            self.low,
            self.max_leverage,
        )
        gross = np.abs(w).sum(-1, keepdims=True)
        scale = np.where(
            gross > self.max_leverage, self.max_leverage / np.maximum(gross, 1e-300), 1.0
        )
        return w * scale
