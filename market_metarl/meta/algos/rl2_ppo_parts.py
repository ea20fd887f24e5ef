"""RL^2-PPO's parts: the recurrent actor-critic, GAE and PPO's clipped surrogate loss.

Used by :class:`~market_metarl.meta.algos.rl2_ppo.RL2PPOLearner` (the method and its measured
trade-off against BPTT are described in :mod:`market_metarl.meta.algos.rl2_ppo`). Rewards are
daily log returns in per cent; GAE reads ``(B, D)`` tensors: one trial per task window, D days.
"""

from __future__ import annotations

import torch
from torch import nn

from market_metarl.meta.policies import GRUPolicy, PolicySpec


class GRUActorCritic(GRUPolicy):
    """The RL^2 GRU with a Gaussian head (pre-squash mean, learned log-std) and a value head.

    ``forward(obs, prev_w, prev_r, h) -> (weight, h)`` is :class:`GRUPolicy`'s: the squashed mean,
    the weight used when acting deterministically, so :class:`RL2Agent` acts with it unchanged.

    Args:
        obs_dim: Observation size.
        n_assets: Assets traded (weights per day).
        spec: Policy shape (``hidden`` GRU units, leverage bounds).
        init_log_std: Initial log standard deviation of the pre-squash Gaussian.
    """

    def __init__(
        self, obs_dim: int, n_assets: int, spec: PolicySpec, init_log_std: float = -0.5
    ) -> None:
        """The GRU policy plus a learned log-std ``(N,)`` and a value head (see the class)."""
        super().__init__(obs_dim, n_assets, spec)
        self.log_std = nn.Parameter(torch.full((n_assets,), float(init_log_std)))
        self.value = nn.Linear(spec.hidden, 1)

    def inputs(
        self, obs: torch.Tensor, prev_weight: torch.Tensor, prev_reward: torch.Tensor
    ) -> torch.Tensor:
        """GRU inputs ``(..., obs_dim + N + 1)``, exactly as :meth:`GRUPolicy.forward` builds them."""
        scaled = prev_reward.unsqueeze(-1) * self.reward_scale
        return torch.cat([self.norm(obs), prev_weight, scaled], -1)

    def sequence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run from ``h0`` over inputs ``x (B, D, in)``: ``(means (B, D, N), values (B, D))``."""
        h = self.initial_state(x.shape[0])
        hs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            hs.append(h)
        states = torch.stack(hs, 1)
        return self.out(states), self.value(states).squeeze(-1)

    def distribution(self, mean: torch.Tensor) -> torch.distributions.Normal:
        """The pre-squash Gaussian of actions around ``mean``."""
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates (Schulman et al., 2016) of one trial per row, no resets.

    ``delta[t] = r[t] + gamma * V[t+1] - V[t]`` with ``V[D] = last_value``, and
    ``A[t] = sum_k (gamma * lam)^k * delta[t+k]``. ``lam = 1`` gives discounted returns minus
    values; ``lam = 0`` the one-step TD errors.

    Args:
        rewards: ``(B, D)``.
        values: ``(B, D)`` value estimates of each day's state.
        last_value: ``(B,)`` value after the last day (0 when the trial ends there).
        gamma: Discount factor.
        lam: GAE parameter.

    Returns:
        ``(advantages (B, D), returns (B, D))``, where ``returns = advantages + values`` are the
        value targets.
    """
    days = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(days)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        adv[:, t] = running
        next_value = values[:, t]
    return adv, adv + values


def clipped_surrogate(
    logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's clipped policy loss ``-mean(min(ratio * A, clip(ratio, 1 - c, 1 + c) * A))``.

    Where the ratio has left the clip range on the side the advantage pushes it to, the loss is
    flat in ``logp`` (no gradient): the update stops moving that action's probability.
    """
    ratio = (logp - logp_old).exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * adv
    return -torch.min(unclipped, clipped).mean()
