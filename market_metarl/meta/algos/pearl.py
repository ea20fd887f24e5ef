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
from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.adapt import params_of
from market_metarl.meta.algos.pearl_agent import (
    ContextEncoder,
    PearlAgent,
    kl_to_prior,
    policy_width,
    running_posterior,
    with_latent,
)
from market_metarl.meta.episodes import Episode, Windows, next_day_returns, return_indices
from market_metarl.meta.experiment import BuildContext
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import MLPPolicy
from market_metarl.meta.registry import Algorithm
from market_metarl.meta.rollout import PNL_SCALE, episode_log_returns, mlp_weights
from market_metarl.seeding import child_seed
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class PearlConfig:
    """``[train.pearl]``: PEARL's own settings.

    Attributes:
        latent: Dimensions of the latent task variable.
        hidden: Hidden units of the context encoder (two layers).
        bilinear: The encoder also reads the products of next-day returns and features.
        batch: Task windows per update.
        iterations: Updates (0: ``[train] iterations``); with fewer than ~1000 on the synthetic
            family the posterior can collapse to the prior.
        kl_weight: Weight of the KL of the posterior to its unit Gaussian prior (0.1 collapsed
            the posterior on the synthetic family: the PnL is in per cent a day).
        online: The posterior takes in each day traded (training and acting).
        memory_days: Most recent days' transitions the acting posterior keeps.
        film: The policy also reads every product of a latent dimension with a normalised
            feature (multiplicative, FiLM-style conditioning on the regime).
    """

    latent: int = 8
    hidden: int = 64
    bilinear: bool = True
    batch: int = 32
    iterations: int = 1500
    kl_weight: float = 0.01
    online: bool = True
    memory_days: int = 120
    film: bool = True

    def __post_init__(self) -> None:
        """Reject empty networks, batch or memory and negative iterations or KL weight.

        Raises:
            ConfigError: The message names the ``train.pearl.*`` setting.
        """
        for name in ("latent", "hidden", "batch", "memory_days"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.pearl.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("iterations", "kl_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.pearl.{name} must be >= 0, got {getattr(self, name)}")


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
        batch: Task windows per update.
        iterations: Updates of a full run.
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
        batch: int = 32,
        iterations: int = 1500,
    ) -> None:
        """Check the policy's input width and set up one Adam over encoder and policy.

        Raises:
            ValueError: The policy does not read :func:`policy_width` inputs for this encoder
                and ``film``.
        """
        self.film = film
        self.batch, self.iterations = batch, iterations
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
        """One update of the encoder and the policy on a batch of task windows."""
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

    def agent_state(self) -> dict[str, Any]:
        """The encoder's and the policy's parameters and normalisers."""
        return {"encoder": self.encoder.state_dict(), "policy": self.policy.state_dict()}

    def training_state(self) -> dict[str, Any]:
        """The optimiser and the latent-sampling generator."""
        return {"opt": self.opt.state_dict(), "gen": self.gen.get_state()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state`."""
        self.encoder.load_state_dict(state["encoder"])
        self.policy.load_state_dict(state["policy"])

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state`."""
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])

    def agent(self) -> PearlAgent:
        """Infers the latent from the support days (and online) and acts on its mean."""
        return PearlAgent(
            self.encoder,
            self.policy,
            self.position,
            self.return_index,
            online=self.online,
            memory_days=self.memory_days,
            film=self.film,
        )


def build(ctx: BuildContext) -> PearlLearner:
    """A fresh PEARL learner from ``[train]`` (the policy's settings) and ``[train.pearl]``.

    ``ctx.observations`` (meta-training tasks only) fit the input normalisers and the return scale.
    """
    ctx.plain_objective_only("pearl")
    train, env = ctx.experiment.train, ctx.experiment.env
    cfg: PearlConfig = train.of("pearl")
    obs_dim, n_assets, position = ctx.obs_dim, ctx.n_assets, ctx.position_slice
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        encoder = ContextEncoder(obs_dim, n_assets, cfg.latent, cfg.hidden, bilinear=cfg.bilinear)
        width = policy_width(obs_dim, cfg.latent, cfg.film)
        policy = MLPPolicy(width, n_assets, train.policy_spec(env))
    returns = return_indices(env, n_assets)
    if ctx.observations is not None:
        observations = ctx.observations
        encoder.norm.fit(observations, keep=position)
        encoder.fit_scale(observations[:, returns])
        # the latent's columns are zero here, so the normaliser leaves them as they are
        extra = width - observations.shape[1]  # latent (and products): zero at z = 0
        padded = torch.cat([observations, observations.new_zeros(len(observations), extra)], 1)
        policy.norm.fit(padded, keep=position)
    encoder.mask_inputs(position)
    if not train.position_input:
        policy.mask_inputs(position)
    return PearlLearner(
        encoder,
        policy,
        Windows(train.adapt_days, train.horizon),
        position,
        returns,
        kl_weight=cfg.kl_weight,
        film=cfg.film,
        online=cfg.online,
        memory_days=cfg.memory_days,
        lr=train.outer_lr,
        grad_clip=train.grad_clip,
        seed=child_seed(ctx.seed, 1),
        batch=cfg.batch,
        iterations=train.iterations_of(cfg.iterations),
    )


ALGORITHM = Algorithm(
    name="pearl",
    config=PearlConfig,
    build=build,
    summary="PEARL: infer a latent regime from the context, condition the policy on it",
)
