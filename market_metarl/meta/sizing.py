"""Volatility-scaled positions: a policy's signal sized by ``vol_target / sigma_hat_t``.

With ``PolicySpec.vol_target`` > 0 a policy outputs a signal ``s`` in ``[-1, 1]`` per asset and
trades ``s * min(vol_target / sigma_hat_t, max_leverage)``, where ``sigma_hat_t`` is the ``vol``
feature of the decision day in its own observation (annualised std of the trailing
``[features] vol_window`` daily log returns: bars dated <= t only). This is how the trend-following
literature sizes positions (Moskowitz, Ooi & Pedersen 2012; Lim, Zohren & Roberts 2019; X-Trend),
and the backtest's ``vol_target`` baseline uses the same estimate: with ``[features] vol_window``
equal to ``[backtest] vol_window``, a constant signal of 1 trades that baseline exactly (a test
checks it). The sizing lives in the policy, so the env, the
backtest, paper trading and the differentiable training rollouts all see the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from market_metarl.envs.spec import EnvSpec
from market_metarl.meta.episodes import feature_index
from market_metarl.types import ConfigError


def vol_scale(
    obs: torch.Tensor, vol_index: torch.Tensor, vol_target: float, max_leverage: float
) -> torch.Tensor:
    """``min(vol_target / sigma_hat, max_leverage)`` per asset ``(..., N)`` (0 where unknown).

    Args:
        obs: Raw (unnormalised) observations ``(..., obs_dim)``.
        vol_index: Where each asset's decision-day ``vol`` feature sits in an observation.
        vol_target: Annualised volatility aimed for.
        max_leverage: Largest scaling (a calm asset's, or one whose volatility is near 0).
    """
    sigma = obs.index_select(-1, vol_index)
    safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    scale = torch.clamp(vol_target / safe, max=max_leverage)
    return torch.where(sigma > 0, scale, torch.zeros_like(scale))


def read_volatility(policy: nn.Module, indices: list[int]) -> None:
    """Point a ``vol_target`` policy at each asset's ``vol`` feature in its observations.

    Raises:
        ConfigError: The policy has no volatility target, or ``indices`` is not one per asset.
    """
    index = getattr(policy, "vol_index", None)
    if not isinstance(index, torch.Tensor):
        raise ConfigError("only a policy with train.vol_target > 0 reads the volatility")
    if len(indices) != index.numel():
        raise ConfigError(f"one volatility index per asset needed, got {len(indices)}")
    index.copy_(torch.as_tensor(indices, dtype=torch.long))


def vol_indices(env: EnvSpec, n_assets: int) -> list[int]:
    """Where each asset's decision-day ``vol`` feature sits in an observation under ``env``.

    Raises:
        ConfigError: The ``vol`` feature is off (``[features] vol_window = 0``).
    """
    if not env.features.vol_window:
        raise ConfigError(
            "train.vol_target sizes positions by the observed volatility, but the vol "
            "feature is off; set [features] vol_window >= 2 (e.g. 60)"
        )
    return [feature_index(env, n_assets, "vol", asset=i) for i in range(n_assets)]
