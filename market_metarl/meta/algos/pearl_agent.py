"""PEARL's parts: context encoder, posterior algebra, policy inputs, and the agent.

The :class:`ContextEncoder`, the Gaussian posterior algebra (:func:`posterior`,
:func:`running_posterior`, :func:`kl_to_prior`), the latent-conditioned policy inputs
(:func:`policy_inputs`) and :class:`PearlAgent`; the method is described in
:mod:`market_metarl.meta.algos.pearl`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn.functional import softplus

from market_metarl.meta.episodes import Episode, next_day_returns
from market_metarl.meta.policies import MLPPolicy, ScaledInputs, mlp_body

MIN_VAR = 1e-4
"""Smallest variance of one transition's factor (no single day is certain evidence)."""


class ContextEncoder(ScaledInputs):
    """One transition ``(obs (..., dim), y (..., N))`` -> a Gaussian factor ``(mu, var)`` over z.

    With ``bilinear`` the network also reads the products ``y_i * x_j`` of the (scaled) next-day
    returns and the (normalised) features: the per-transition statistics of a linear-Gaussian
    return model (its score), which a small tanh network would otherwise have to learn to
    multiply. They make the latent's job (how do returns follow from features here?) linear.
    """

    def __init__(
        self,
        obs_dim: int,
        n_assets: int,
        latent: int,
        hidden: int = 64,
        layers: int = 2,
        bilinear: bool = True,
    ) -> None:
        """A tanh MLP over the transition and a linear head of ``2 * latent`` outputs.

        Args:
            obs_dim: Observation size.
            n_assets: Assets whose next-day returns are read (N).
            latent: Dimensions of z (Z).
            hidden: Hidden units per layer.
            layers: Hidden layers.
            bilinear: Also read the ``N * obs_dim`` products of returns and features.
        """
        super().__init__(obs_dim, n_assets)
        self.latent, self.bilinear = latent, bilinear
        d_in = obs_dim + n_assets + (n_assets * obs_dim if bilinear else 0)
        self.body, d = mlp_body(d_in, hidden, layers)
        self.out = nn.Linear(d, 2 * latent)

    def forward(self, obs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The factor of each transition: ``(mu (..., Z), var (..., Z))``, ``var >= MIN_VAR``.

        Args:
            obs: Observations ``(..., obs_dim)`` (normalised and masked here).
            y: The next day's log returns ``(..., N)`` (divided by ``y_scale`` here).
        """
        x, y = self.norm(obs) * self.input_mask, y / self.y_scale
        parts = [x, y]
        if self.bilinear:
            parts.append((y.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2))
        z = self.out(self.body(torch.cat(parts, -1)))
        return z[..., : self.latent], softplus(z[..., self.latent :]) + MIN_VAR


def posterior(mu: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Product of the factors ``(..., T, Z)`` and the unit prior: ``(mean, var)`` ``(..., Z)``."""
    precision = 1.0 + (1.0 / var).sum(-2)
    return (mu / var).sum(-2) / precision, 1.0 / precision


def running_posterior(mu: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posteriors of every prefix: row ``t`` of ``(B, T+1, Z)`` uses transitions ``0..t-1``."""
    zero = torch.zeros_like(mu[:, :1])
    precision = 1.0 + torch.cat([zero, (1.0 / var).cumsum(1)], 1)
    weighted = torch.cat([zero, (mu / var).cumsum(1)], 1)
    return weighted / precision, 1.0 / precision


def kl_to_prior(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, var) || N(0, I))`` summed over the latent's dimensions."""
    return 0.5 * (var + mean**2 - 1.0 - torch.log(var)).sum(-1)


def policy_inputs(
    obs: torch.Tensor, z: torch.Tensor, encoder: ContextEncoder | None = None
) -> torch.Tensor:
    """The policy's input ``(..., obs_dim + Z [+ Z * obs_dim])``: observation, latent, products.

    With ``encoder`` (multiplicative, FiLM-style conditioning) the input also holds every product
    of a latent dimension with a feature normalised and masked by the encoder.

    The products make "trade the return one way in this regime, the other way in that one" linear
    in the inputs. Without them the policy must learn that interaction itself, and on the
    synthetic family 3 seeds of 5 settled on handling one kind of regime only (~0.45 of the
    oracle, where the other 2 reached ~0.99).
    """
    parts = [obs, z.to(obs.dtype)]
    if encoder is not None:
        features = encoder.norm(obs) * encoder.input_mask
        parts.append((z.to(obs.dtype).unsqueeze(-1) * features.unsqueeze(-2)).flatten(-2))
    return torch.cat(parts, -1)


def with_latent(ep: Episode, z: torch.Tensor, encoder: ContextEncoder | None = None) -> Episode:
    """The episode with the latent joined to every observation (see :func:`policy_inputs`).

    Args:
        ep: The episode whose observations the policy reads.
        z: One latent per task ``(B, Z)``, or one per task and day ``(B, D, Z)``.
        encoder: The context encoder, for the FiLM products (None: no products).
    """
    if z.dim() == 2:
        z = z.unsqueeze(1).expand(-1, ep.days, -1)
    return replace(ep, obs=policy_inputs(ep.obs, z, encoder))


def policy_width(obs_dim: int, latent: int, film: bool) -> int:
    """Inputs of the PEARL policy (see :func:`policy_inputs`)."""
    return obs_dim + latent + (latent * obs_dim if film else 0)


class PearlAgent:
    """Infers the latent from the support days (and, online, each day traded) and acts on its mean.

    Args:
        encoder: The context encoder.
        policy: The latent-conditioned policy.
        position: Where the held weights sit in an observation.
        return_index: Observation index of each asset's ``log_ret`` (today's return).
        online: Keep updating the posterior with the days traded.
        memory_days: Most recent transitions the posterior keeps.
        name: Strategy name.
        film: The policy also reads latent x feature products (see :func:`policy_inputs`).
    """

    def __init__(
        self,
        encoder: ContextEncoder,
        policy: MLPPolicy,
        position: slice,
        return_index: Sequence[int],
        online: bool = True,
        memory_days: int = 120,
        name: str = "pearl",
        film: bool = True,
    ) -> None:
        """Start from the prior: no transition remembered (:meth:`init`)."""
        self.name, self.encoder, self.policy, self.film = name, encoder, policy, film
        self.position, self.return_index = position, list(return_index)
        self.online, self.memory_days = online, memory_days
        self.init()

    def init(self) -> None:
        """Back to the prior ``N(0, I)``: forget every remembered transition."""
        self.factors: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.last_obs: torch.Tensor | None = None

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance ``(Z,)`` of the latent given the remembered transitions."""
        if not self.factors:
            z = self.encoder.latent
            return torch.zeros(z), torch.ones(z)
        kept = self.factors[-self.memory_days :]
        mu = torch.stack([f[0] for f in kept])
        var = torch.stack([f[1] for f in kept])
        return posterior(mu, var)

    @torch.no_grad()
    def adapt(self, support: Episode) -> None:
        """Infer the latent from the support days' transitions (one task)."""
        if support.days == 0:
            return
        mu, var = self.encoder(support.obs[0], next_day_returns(support)[0])
        self.factors += list(zip(mu, var, strict=True))
        self.last_obs = None  # today's return (first obs acted on) is the support's last target

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """Target weights ``(N,)`` for the next open, conditioned on the posterior mean.

        Online, yesterday's observation and today's return (read from ``obs``) first add a
        factor to the posterior. ``reward`` is not read.
        """
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1)
        if self.online and self.last_obs is not None:
            mu, var = self.encoder(self.last_obs, x[self.return_index])
            self.factors.append((mu, var))
        self.last_obs = x.clone()
        mean, _ = self.posterior()
        film = self.encoder if self.film else None
        w = self.policy(policy_inputs(x.reshape(1, -1), mean.reshape(1, -1), film))
        return w.reshape(-1).double().numpy()

    def task_state(self) -> dict[str, np.ndarray]:
        """The posterior mean of the latent (what the probe reads and paper trading hashes)."""
        return {"posterior_mean": self.posterior()[0].double().numpy()}
