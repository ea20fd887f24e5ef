"""Context-based meta-RL in the spirit of PEARL (Rakelly et al., 2019): infer a latent task variable.

**Encoder.** Each transition of the support days, ``(observation features, next day's log
returns)``, is mapped by :class:`ContextEncoder` to a Gaussian factor ``N(mu_i, var_i)`` over a
latent ``z``; the posterior is their product with the unit Gaussian prior,

    precision = 1 + sum_i 1/var_i,    mean = (sum_i mu_i/var_i) / precision,

so it is permutation-invariant by construction (a sum over transitions), is the prior when no day
has been seen, and sharpens as days come. A KL term to the prior ``N(0, I)`` regularises it.

**Policy.** An :class:`~market_metarl.meta.policies.MLPPolicy` reads the observation and ``z``
(a reparameterised sample while training, the posterior mean when acting). It is trained with the
differentiable PnL objective on the query days (pathwise, as MAML's outer loss), the gradient
flowing through ``z`` into the encoder: ``loss = -mean daily log return (per cent) + beta * KL``.

**Online posterior.** The posterior of a product of factors is a running sum, so it costs nothing
to update it with every day traded (PEARL accumulates context as it acts). With ``online`` the
training objective already uses, on each query day, the posterior of every transition observed
by then (support and earlier query days), so the policy is trained for what it meets when acting;
without it, the posterior of the support days is fixed for the whole query. Posterior sampling
during the support days (PEARL's exploration) is not needed here: prices do not react to our
trades, so the support transitions are the same whatever the agent does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from market_metarl.envs.spec import EnvSpec
from market_metarl.meta.adapt import params_of
from market_metarl.meta.episodes import Episode
from market_metarl.meta.experiment import TrainConfig
from market_metarl.meta.learners import Windows
from market_metarl.meta.model_based import next_day_returns, return_indices
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import MLPPolicy, ScaledInputs, mlp_body
from market_metarl.meta.rollout import PNL_SCALE, episode_log_returns, mlp_weights
from market_metarl.seeding import child_seed

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
        super().__init__(obs_dim, n_assets)
        self.latent, self.bilinear = latent, bilinear
        d_in = obs_dim + n_assets + (n_assets * obs_dim if bilinear else 0)
        self.body, d = mlp_body(d_in, hidden, layers)
        self.out = nn.Linear(d, 2 * latent)

    def forward(self, obs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.norm(obs) * self.input_mask, y / self.y_scale
        parts = [x, y]
        if self.bilinear:
            parts.append((y.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2))
        z = self.out(self.body(torch.cat(parts, -1)))
        return z[..., : self.latent], F.softplus(z[..., self.latent :]) + MIN_VAR


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
    """The policy's input: the observation, the latent and, with ``encoder`` (multiplicative,
    FiLM-style conditioning), every product of a latent dimension with a normalised feature.

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
    """The episode with the latent ``(B, Z)`` or ``(B, D, Z)`` joined to every observation
    (see :func:`policy_inputs`)."""
    if z.dim() == 2:
        z = z.unsqueeze(1).expand(-1, ep.days, -1)
    return replace(ep, obs=policy_inputs(ep.obs, z, encoder))


class PearlLearner:
    """PEARL with the pathwise PnL objective (see the module docstring).

    Args:
        encoder: The context encoder (normaliser and return scale fitted on meta-training data).
        policy: An MLP policy over ``obs_dim + latent`` inputs.
        windows: Support/query split.
        position: Where the held weights sit in an observation.
        return_index: Observation index of each asset's ``log_ret`` (online transitions' target).
        kl_weight: Weight of the KL term (beta).
        online: Update the posterior with each query day (training and acting).
        memory_days: Most recent transitions the acting posterior keeps.
        film: The policy also reads latent x feature products (see :func:`policy_inputs`).
        lr: Adam step size.
        grad_clip: Global norm clip of the update.
        seed: Seed of the latent samples drawn while training.
    """

    name = "pearl"

    def __init__(
        self,
        encoder: ContextEncoder,
        policy: MLPPolicy,
        windows: Windows,
        position: slice,
        return_index: Sequence[int],
        kl_weight: float = 0.1,
        online: bool = True,
        memory_days: int = 120,
        film: bool = True,
        lr: float = 3e-3,
        grad_clip: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.film = film
        expected = policy_width(encoder.obs_dim, encoder.latent, film)
        if policy.obs_dim != expected:
            raise ValueError(
                f"the PEARL policy reads {expected} inputs (film={film}), got a policy of "
                f"{policy.obs_dim}"
            )
        self.encoder, self.policy, self.windows = encoder, policy, windows
        self.position, self.return_index = position, list(return_index)
        self.kl_weight, self.online, self.memory_days = kl_weight, online, memory_days
        self.grad_clip = grad_clip
        self.gen = torch.Generator().manual_seed(seed)
        self.opt = LazyAdam([*encoder.parameters(), *policy.parameters()], lr=lr)

    def _film(self) -> ContextEncoder | None:
        return self.encoder if self.film else None

    def _latents(self, ep: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled latents of the query days ``(B, H, Z)`` and the support posterior's KL ``(B,)``."""
        k = self.windows.adapt_days - 1
        mu, var = self.encoder(ep.obs, next_day_returns(ep))
        mean, post_var = running_posterior(mu, var)  # (B, D+1, Z)
        kl = kl_to_prior(mean[:, k], post_var[:, k])
        if self.online:
            mean, post_var = mean[:, k : ep.days], post_var[:, k : ep.days]
        else:
            mean, post_var = mean[:, k : k + 1], post_var[:, k : k + 1]
        eps = torch.randn(ep.batch, 1, self.encoder.latent, generator=self.gen)
        z = mean + post_var.sqrt() * eps
        return z.expand(-1, self.windows.horizon, -1), kl

    def step(self, ep: Episode) -> dict[str, float]:
        query = self.windows.query(ep)
        # rollout: infer z from the context, replay the policy on the query days
        z, kl = self._latents(ep)
        rets = episode_log_returns(
            query,
            mlp_weights(self.policy, params_of(self.policy), with_latent(query, z, self._film())),
        )
        pnl = -rets.mean() * PNL_SCALE
        loss = pnl + self.kl_weight * kl.mean()
        # optimize
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [*self.encoder.parameters(), *self.policy.parameters()], self.grad_clip
        )
        self.opt.step()
        with torch.no_grad():
            prior = torch.zeros(ep.batch, self.encoder.latent)
            pre_w = mlp_weights(
                self.policy, params_of(self.policy), with_latent(query, prior, self._film())
            )
            pre = -episode_log_returns(query, pre_w).mean() * PNL_SCALE
        return {
            "query_loss": float(pnl.detach()),
            "kl": float(kl.mean().detach()),
            "pre_adapt_loss": float(pre),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.state_dict(),
            "policy": self.policy.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])

    def agent(self) -> PearlAgent:
        return PearlAgent(
            self.encoder,
            self.policy,
            self.position,
            self.return_index,
            online=self.online,
            memory_days=self.memory_days,
            film=self.film,
        )


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
        self.name, self.encoder, self.policy, self.film = name, encoder, policy, film
        self.position, self.return_index = position, list(return_index)
        self.online, self.memory_days = online, memory_days
        self.init()

    def init(self) -> None:
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


def policy_width(obs_dim: int, latent: int, film: bool) -> int:
    """Inputs of the PEARL policy (see :func:`policy_inputs`)."""
    return obs_dim + latent + (latent * obs_dim if film else 0)


def build_pearl(
    cfg: TrainConfig,
    env: EnvSpec,
    obs_dim: int,
    n_assets: int,
    position: slice,
    seed: int,
    observations: torch.Tensor | None = None,
) -> PearlLearner:
    """A fresh :class:`PearlLearner` from the ``[train]`` ``pearl_*`` settings (and the policy's).

    ``observations`` (meta-training tasks only) fit the input normalisers and the return scale.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = ContextEncoder(
            obs_dim, n_assets, cfg.pearl_latent, cfg.pearl_hidden, bilinear=cfg.pearl_bilinear
        )
        width = policy_width(obs_dim, cfg.pearl_latent, cfg.pearl_film)
        policy = MLPPolicy(width, n_assets, cfg.policy_spec(env))
    returns = return_indices(env, n_assets)
    if observations is not None:
        encoder.norm.fit(observations, keep=position)
        encoder.fit_scale(observations[:, returns])
        # the latent's columns are zero here, so the normaliser leaves them as they are
        extra = width - observations.shape[1]  # latent (and products): zero at z = 0
        padded = torch.cat([observations, observations.new_zeros(len(observations), extra)], 1)
        policy.norm.fit(padded, keep=position)
    encoder.mask_inputs(position)
    if not cfg.position_input:
        policy.mask_inputs(position)
    return PearlLearner(
        encoder,
        policy,
        Windows(cfg.adapt_days, cfg.horizon),
        position,
        returns,
        kl_weight=cfg.pearl_kl_weight,
        film=cfg.pearl_film,
        online=cfg.pearl_online,
        memory_days=cfg.pearl_memory_days,
        lr=cfg.outer_lr,
        grad_clip=cfg.grad_clip,
        seed=child_seed(seed, 1),
    )
