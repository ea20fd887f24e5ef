"""Policies: an MLP with a deterministic, categorical or Gaussian head, and a GRU for RL^2.

Every policy maps observations to *target weights* in ``[-max_leverage, max_leverage]`` (or
``[0, max_leverage]`` long-only), because the pathwise objective differentiates the PnL through the
weights. The heads differ in how a weight is drawn:

- ``deterministic``: ``w = max_leverage * tanh(f(obs))``.
- ``categorical``: logits over the env's discrete ``levels``; the pathwise objective uses the
  expected weight ``sum_k p_k * level_k``; acting takes the most likely level.
- ``gaussian``: a tanh-squashed Gaussian; the pathwise objective uses the squashed mean (or a
  reparameterised sample), acting uses the mean.

Observations are normalised by a :class:`Normalizer` fitted on meta-training data only and stored
in the policy (a buffer), so a checkpoint carries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.functional import linear

from market_metarl.meta.objectives import LOG_RETURN, Objective
from market_metarl.meta.sizing import vol_scale
from market_metarl.types import ConfigError

Head = Literal["deterministic", "categorical", "gaussian"]
HEADS: tuple[str, ...] = ("deterministic", "categorical", "gaussian")


@dataclass(frozen=True)
class PolicySpec:
    """Shape of a policy network.

    Attributes:
        hidden: Hidden units per layer (MLP) or of the GRU.
        layers: Hidden layers of the MLP.
        head: ``deterministic``, ``categorical`` or ``gaussian``.
        levels: Discrete target weights of the categorical head.
        max_leverage: Largest absolute weight.
        long_only: Weights in ``[0, max_leverage]``.
        position_input: Feed the weight held at the decision (already in the env observation);
            without it the policy ignores that part, which lets the pathwise objective run over
            all days at once (no position feedback).
        vol_target: Volatility-scaled positions when > 0: the network's output is a signal
            ``s`` in ``[-1, 1]`` (``[0, 1]`` long-only) and the weight is
            ``s * min(vol_target / sigma_hat_t, max_leverage)``, ``sigma_hat_t`` the observed
            annualised volatility of the decision day (the ``vol`` feature; 0 weight while it is
            unknown). A constant signal of 1 is the volatility-targeted long baseline.
        objective: What the pathwise learners fit the policy to, in training and adaptation.
    """

    hidden: int = 32
    layers: int = 1
    head: Head = "deterministic"
    levels: tuple[float, ...] = (-1.0, 0.0, 1.0)
    max_leverage: float = 1.0
    long_only: bool = False
    position_input: bool = True
    vol_target: float = 0.0
    objective: Objective = LOG_RETURN

    def __post_init__(self) -> None:
        """Reject an unknown head, an empty network or a non-positive leverage.

        Raises:
            ConfigError: The message names the ``policy.*`` setting and the value given.
        """
        if self.head not in HEADS:
            raise ConfigError(f"policy.head must be one of {HEADS}, got {self.head!r}")
        if self.hidden < 1 or self.layers < 1:
            raise ConfigError("policy.hidden and policy.layers must be >= 1")
        if self.max_leverage <= 0:
            raise ConfigError(f"policy.max_leverage must be > 0, got {self.max_leverage}")
        if not self.vol_target >= 0 or self.vol_target == float("inf"):
            raise ConfigError(
                f"train.vol_target must be a finite number >= 0 (annualised, e.g. 0.15; 0 turns "
                f"volatility scaling off), got {self.vol_target!r}"
            )


class Normalizer(nn.Module):
    """Fixed affine input normalisation ``(x - mean) / std``, fitted once on training data."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int) -> None:
        """Start as the identity (mean 0, std 1) over ``dim`` inputs until :meth:`fit`."""
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, keep: slice | None = None) -> None:
        """Fit on training observations ``(..., dim)``.

        Args:
            x: Observations of the meta-training tasks only.
            keep: Columns left as they are (the held weights: already on a unit scale, and zero
                in the observation tables the normaliser is fitted on).
        """
        flat = x.reshape(-1, x.shape[-1]).float()
        mean, std = flat.mean(0), flat.std(0)
        constant = std < 1e-8
        mean[constant], std[constant] = 0.0, 1.0
        if keep is not None:
            mean[keep], std[keep] = 0.0, 1.0
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised inputs ``(..., dim)``."""
        return (x - self.mean) / self.std


class ScaledInputs(nn.Module):
    """Base of networks that read observations and next-day returns.

    It holds an input normaliser, a mask that can hide the held weights, and a per-asset return
    scale, all fitted on training data and stored as buffers (so a checkpoint carries them).
    """

    input_mask: torch.Tensor
    y_scale: torch.Tensor

    def __init__(self, obs_dim: int, n_assets: int) -> None:
        """Identity normaliser and scale, every input kept, until fitted.

        Args:
            obs_dim: Observation size.
            n_assets: Assets whose next-day returns are read (N).
        """
        super().__init__()
        self.obs_dim, self.n_assets = obs_dim, n_assets
        self.norm = Normalizer(obs_dim)
        self.register_buffer("input_mask", torch.ones(obs_dim))
        self.register_buffer("y_scale", torch.ones(n_assets))

    def mask_inputs(self, position: slice) -> None:
        """Ignore the held weights (a property of the trader, not of the market or regime)."""
        self.input_mask[position] = 0.0

    @torch.no_grad()
    def fit_scale(self, returns: torch.Tensor) -> None:
        """Fit the per-asset return scale on meta-training returns ``(..., N)``."""
        sd = returns.reshape(-1, self.n_assets).float().std(0)
        self.y_scale.copy_(torch.where(sd > 1e-12, sd, torch.ones_like(sd)))


def mlp_body(d_in: int, hidden: int, layers: int) -> tuple[nn.Sequential, int]:
    """``layers`` tanh layers of ``hidden`` units; returns the body and its output width."""
    blocks: list[nn.Module] = []
    d = d_in
    for _ in range(layers):
        blocks += [nn.Linear(d, hidden), nn.Tanh()]
        d = hidden
    return nn.Sequential(*blocks), d


def _linear_per_task(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x[b] @ weight[b].T + bias[b]`` for every task b: ``(B, M, in)`` -> ``(B, M, out)``."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _squash(raw: torch.Tensor, spec: PolicySpec) -> torch.Tensor:
    """Weights (or, with ``vol_target``, signals in ``[-1, 1]``) from pre-squash outputs."""
    bound = 1.0 if spec.vol_target else spec.max_leverage
    if spec.long_only:
        return bound * torch.sigmoid(raw)
    return bound * torch.tanh(raw)


def _sized(policy: MLPPolicy | GRUPolicy, w: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """``w`` times :func:`~market_metarl.meta.sizing.vol_scale` of ``obs`` under ``vol_target``."""
    spec = policy.spec
    if not spec.vol_target:
        return w
    return w * vol_scale(obs, policy.vol_index, spec.vol_target, spec.max_leverage).to(w.dtype)


class MLPPolicy(nn.Module):
    """MLP from an observation ``(..., obs_dim)`` to target weights ``(..., n_assets)``."""

    input_mask: torch.Tensor
    levels: torch.Tensor
    vol_index: torch.Tensor

    def __init__(self, obs_dim: int, n_assets: int, spec: PolicySpec) -> None:
        """Build the body and the head ``spec`` names (initialised from the global torch RNG).

        Use :func:`seeded_mlp` for a seeded network that leaves the global RNG alone.

        Args:
            obs_dim: Observation size.
            n_assets: Assets traded (N).
            spec: Network shape, head and weight bounds.

        Raises:
            ConfigError: A categorical head for more than one asset.
        """
        super().__init__()
        self.spec, self.obs_dim, self.n_assets = spec, obs_dim, n_assets
        self.norm = Normalizer(obs_dim)
        self.register_buffer("input_mask", torch.ones(obs_dim))
        self.body, d = mlp_body(obs_dim, spec.hidden, spec.layers)
        if spec.head == "categorical":
            if n_assets != 1:
                raise ConfigError("policy.head='categorical' trades one asset; use 'deterministic'")
            self.out = nn.Linear(d, len(spec.levels))
            self.register_buffer("levels", torch.tensor(spec.levels, dtype=torch.float32))
        else:
            self.out = nn.Linear(d, n_assets)
        if spec.head == "gaussian":
            self.log_std = nn.Parameter(torch.full((n_assets,), -1.0))
        if spec.vol_target:
            self.register_buffer("vol_index", torch.zeros(n_assets, dtype=torch.long))

    def mask_inputs(self, position: slice) -> None:
        """Ignore the observation's position part (``position_input=False``)."""
        self.input_mask[position] = 0.0

    def sized(self, w: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Signals times :func:`vol_scale` under ``vol_target``; the weights as they are otherwise."""
        return _sized(self, w, obs)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The body's output ``(..., hidden)`` on normalised, masked observations."""
        return self.body(self.norm(obs) * self.input_mask)

    def forward(self, obs: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """Target weights used by the pathwise objective (expected weight for categorical).

        With ``raw`` the head's logits (categorical) or pre-squash means are returned instead.
        """
        return self.head(self.out(self.features(obs)), raw, obs)

    def head(
        self, z: torch.Tensor, raw: bool = False, obs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Target weights ``(..., n_assets)`` from the output layer's ``z`` (see :meth:`forward`).

        ``obs`` (the raw observations of ``z``) sizes the signals of a ``vol_target`` policy.
        """
        if raw:
            return z
        if self.spec.head == "categorical":
            probs = torch.softmax(z, -1)
            bound = 1.0 if self.spec.vol_target else self.spec.max_leverage
            w = (probs * self.levels.clamp(-bound, bound)).sum(-1, keepdim=True)
        else:
            w = _squash(z, self.spec)
        if self.spec.vol_target:
            if obs is None:
                raise ValueError("a vol_target policy needs the observations to size its weights")
            w = self.sized(w, obs)
        return w

    def forward_with(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor, raw: bool = False
    ) -> torch.Tensor:
        """:meth:`forward` with ``params`` in place of the policy's own weights.

        The same operations as ``torch.func.functional_call(self, params, (obs,))`` (``functional.linear``
        is what ``nn.Linear`` runs), so the same numbers bit for bit, without the per-call cost of
        swapping the module's parameters (about 1.5 ms a call, which dominated the day-by-day
        rollouts of adaptation, backtests and paper trading). Parameters missing from ``params``
        are the policy's own.
        """
        x = self.norm(obs) * self.input_mask
        for name, layer in self.body.named_children():
            if isinstance(layer, nn.Linear):
                w = params.get(f"body.{name}.weight", layer.weight)
                b = params.get(f"body.{name}.bias", layer.bias)
                x = linear(x, w, b)
            else:
                x = layer(x)
        z = linear(
            x, params.get("out.weight", self.out.weight), params.get("out.bias", self.out.bias)
        )
        return self.head(z, raw, obs)

    def forward_per_task(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`forward` for B tasks at once, each with its own parameters.

        Batched matrix products: faster than ``torch.func.vmap`` over ``functional_call`` for
        these small layers, and the same numbers up to float rounding (a test checks both).

        Args:
            params: The policy's parameters by name, each with a leading task axis B.
            obs: Observations ``(B, obs_dim)`` or ``(B, D, obs_dim)``, task ``b`` in row ``b``.

        Returns:
            Target weights ``(B, n_assets)`` or ``(B, D, n_assets)``.
        """
        one_day = obs.dim() == 2
        obs = obs.unsqueeze(1) if one_day else obs
        x = self.norm(obs) * self.input_mask
        for name, layer in self.body.named_children():
            if isinstance(layer, nn.Linear):
                x = _linear_per_task(x, params[f"body.{name}.weight"], params[f"body.{name}.bias"])
            else:
                x = layer(x)
        w = self.head(_linear_per_task(x, params["out.weight"], params["out.bias"]), obs=obs)
        return w.squeeze(1) if one_day else w

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """Action distribution for the policy-gradient estimator (categorical or Gaussian)."""
        return self.distribution_from_raw(
            self.forward(obs, raw=True), getattr(self, "log_std", None)
        )

    def distribution_from_raw(
        self, z: torch.Tensor, log_std: torch.Tensor | None = None
    ) -> torch.distributions.Distribution:
        """Categorical over levels from logits, or a Gaussian (pre-squash) from means.

        A deterministic head explores with a fixed std of 0.3 (pre-squash) under this estimator.
        """
        if self.spec.head == "categorical":
            return torch.distributions.Categorical(logits=z)
        std = log_std.exp() if log_std is not None else torch.full_like(z, 0.3)
        return torch.distributions.Normal(z, std)

    def weight_of(self, sample: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        """Target weights of sampled actions from :meth:`distribution` (taken at ``obs``)."""
        if self.spec.head == "categorical":
            bound = 1.0 if self.spec.vol_target else self.spec.max_leverage
            w = self.levels.clamp(-bound, bound)[sample].unsqueeze(-1)
        else:
            w = _squash(sample, self.spec)
        return w if obs is None else self.sized(w, obs)


class GRUPolicy(nn.Module):
    """Recurrent policy for RL^2: inputs are the observation, the previous weights and reward.

    Its hidden state is the adaptation: after the support days it encodes what the policy has
    learned about the regime, and it keeps updating as new days come.
    """

    vol_index: torch.Tensor

    def __init__(self, obs_dim: int, n_assets: int, spec: PolicySpec) -> None:
        """A GRU cell of ``spec.hidden`` units over ``obs_dim + N + 1`` inputs, and a linear head.

        Initialised from the global torch RNG; use :func:`seeded_gru` to leave it alone.

        Args:
            obs_dim: Observation size.
            n_assets: Assets traded (N).
            spec: ``hidden`` units and the weight bounds (the MLP settings are not read).
        """
        super().__init__()
        self.spec, self.obs_dim, self.n_assets = spec, obs_dim, n_assets
        self.norm = Normalizer(obs_dim)
        self.cell = nn.GRUCell(obs_dim + n_assets + 1, spec.hidden)
        self.out = nn.Linear(spec.hidden, n_assets)
        self.reward_scale = 100.0  # daily log returns are ~1e-2: read them in per cent
        if spec.vol_target:
            self.register_buffer("vol_index", torch.zeros(n_assets, dtype=torch.long))

    def initial_state(self, batch: int) -> torch.Tensor:
        """The hidden state before any day, zeros ``(batch, hidden)``."""
        return torch.zeros(batch, self.spec.hidden)

    def forward(
        self,
        obs: torch.Tensor,
        prev_weight: torch.Tensor,
        prev_reward: torch.Tensor,
        h: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One day: ``(obs (B, D), prev_weight (B, N), prev_reward (B,), h)`` -> ``(w, h')``."""
        x = torch.cat(
            [self.norm(obs), prev_weight, prev_reward.unsqueeze(-1) * self.reward_scale], -1
        )
        h = self.cell(x, h)
        return _sized(self, _squash(self.out(h), self.spec), obs), h


def seeded_mlp(obs_dim: int, n_assets: int, spec: PolicySpec, seed: int) -> MLPPolicy:
    """A fresh :class:`MLPPolicy` initialised from ``seed`` (the global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLPPolicy(obs_dim, n_assets, spec)


def seeded_gru(obs_dim: int, n_assets: int, spec: PolicySpec, seed: int) -> GRUPolicy:
    """A fresh :class:`GRUPolicy` initialised from ``seed`` (the global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GRUPolicy(obs_dim, n_assets, spec)
