"""One agent interface, in the spirit of Meta-World's: ``init()``, ``adapt(support)``, ``act(obs)``.

Every method, meta-learned or baseline, is an :class:`Agent`, so the adaptation benchmark, the
backtest and paper trading treat them alike:

- ``init()`` forgets any adaptation (back to the meta-learned prior, fresh recurrent state);
- ``adapt(support)`` takes the support days (an :class:`~market_metarl.meta.episodes.Episode` of one
  task) and adapts: gradient steps through the one :func:`~market_metarl.meta.adapt.adapt`
  primitive (MAML, fine-tune, scratch), a recurrent state (RL^2), or nothing (pooled, buy-and-hold);
- ``act(obs, reward)`` maps the env observation after a close (and the log return of the day just
  marked) to target weights for the next open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from market_metarl.meta.adapt import Params, adapt, call, detached_copy, params_of
from market_metarl.meta.episodes import Episode
from market_metarl.meta.policies import GRUPolicy, MLPPolicy
from market_metarl.meta.rollout import gru_rollout, mlp_loss


def _as_batch(obs: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, -1)


@dataclass
class InnerLoop:
    """How a gradient-based agent adapts: steps, step size(s), clipping."""

    steps: int = 1
    lr: float | Mapping[str, torch.Tensor] = 0.1
    max_grad_norm: float | None = 10.0


class GradientAgent:
    """An MLP policy that adapts by gradient steps on the support days' PnL.

    One class serves MAML (meta-learned start and step sizes), fine-tune (the pooled policy's
    parameters, a fixed step size, more steps) and scratch (a fresh initialisation, many steps).
    """

    def __init__(self, name: str, policy: MLPPolicy, start: Params, inner: InnerLoop) -> None:
        self.name, self.policy, self.start, self.inner = name, policy, start, inner
        self.params: Params = dict(start)

    def init(self) -> None:
        self.params = dict(self.start)

    def adapt(self, support: Episode) -> None:
        if self.inner.steps == 0 or support.days == 0:
            return
        start = detached_copy(self.start)
        lr = self.inner.lr
        if isinstance(lr, Mapping):
            lr = {k: v.detach() for k, v in lr.items()}
        adapted = adapt(
            start,
            lambda p: mlp_loss(self.policy, p, support),
            steps=self.inner.steps,
            lr=lr,
            first_order=True,
            max_grad_norm=self.inner.max_grad_norm,
        )
        self.params = {k: v.detach() for k, v in adapted.items()}

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        # The weight the pathwise objective trained (expected weight for a categorical head).
        w = call(self.policy, self.params, _as_batch(obs))
        return w.reshape(-1).double().numpy()

    def task_state(self) -> dict[str, np.ndarray]:
        """The adapted parameters, by name in sorted order."""
        return {k: v.detach().numpy() for k, v in sorted(self.params.items())}


class ScratchAgent(GradientAgent):
    """Trained on the support days only, from a fresh initialisation (seeded per task)."""

    def __init__(self, policy: MLPPolicy, inner: InnerLoop, seed: int = 0) -> None:
        super().__init__("scratch", policy, params_of(policy), inner)
        self.seed = seed

    def init(self) -> None:
        # The same fresh initialisation at every reset: a replay (paper trading restarting each
        # day) must reproduce the backtest's positions exactly.
        gen = torch.Generator().manual_seed(self.seed)
        fresh = {}
        for k, v in params_of(self.policy).items():
            if v.dim() >= 2:
                bound = 1.0 / np.sqrt(v.shape[1])
                fresh[k] = (torch.rand(v.shape, generator=gen) * 2 - 1) * bound
            else:
                fresh[k] = torch.zeros_like(v)
        self.start = fresh
        self.params = dict(fresh)


class RL2Agent:
    """A recurrent policy whose hidden state is the adaptation (it keeps adapting as days come)."""

    def __init__(self, policy: GRUPolicy, name: str = "rl2") -> None:
        self.name, self.policy = name, policy
        self.init()

    def init(self) -> None:
        self.h = self.policy.initial_state(1)
        self.prev_w = torch.zeros(1, self.policy.n_assets)
        self.prev_r = torch.zeros(1)
        self.started = False

    @torch.no_grad()
    def adapt(self, support: Episode) -> None:
        if support.days == 0:
            return
        weights, _, self.h, last_r = gru_rollout(self.policy, None, support)
        self.prev_w, self.prev_r = weights[:, -1].float(), last_r.float()

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        if self.started:
            self.prev_r = torch.tensor([reward], dtype=torch.float32)
        self.started = True
        w, self.h = self.policy(_as_batch(obs), self.prev_w, self.prev_r, self.h)
        self.prev_w = w.float()
        return w.reshape(-1).double().numpy()

    def task_state(self) -> dict[str, np.ndarray]:
        """The recurrent state: hidden state, last weight and last return (all the next act reads)."""
        state = (("h", self.h), ("prev_w", self.prev_w), ("prev_r", self.prev_r))
        return {k: v.detach().numpy() for k, v in state}


class ConstantAgent:
    """Holds fixed weights: buy-and-hold (weight 1) or flat."""

    def __init__(self, weights: np.ndarray | float = 1.0, name: str = "buy_and_hold") -> None:
        self.name, self.weights = name, np.atleast_1d(np.asarray(weights, dtype=np.float64))

    def init(self) -> None:
        return None

    def adapt(self, support: Episode) -> None:
        return None

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        return self.weights.copy()

    def task_state(self) -> dict[str, np.ndarray]:
        """Nothing adapts."""
        return {}


class ReturnRuleAgent:
    """Acts on the last day's return, read back from the env's features.

    ``oracle`` (synthetic tasks only): knows the AR(1) parameters and holds the sign of
    ``mu + phi * (r - mu)``. ``plugin``: estimates the sign of the lag-1 autocorrelation from the
    support days' returns once, then holds ``sign(rho_hat * r)``; the simple reference that shows
    how much evidence the K support days carry.
    """

    def __init__(
        self,
        name: str,
        return_index: int,
        scale: float = 1.0,
        phi: float | None = None,
        mu: float = 0.0,
    ) -> None:
        self.name, self.return_index, self.scale = name, return_index, scale
        self.phi, self.mu = phi, mu
        self.rho = 0.0

    def init(self) -> None:
        self.rho = 0.0

    def adapt(self, support: Episode) -> None:
        if self.name == "oracle":
            return
        r = support.obs[0, :, self.return_index].double().numpy() / self.scale
        last = np.log(support.closes[0, -1, 0] / support.closes[0, -2, 0]).item()
        series = np.append(r, last)
        x, y = series[:-1] - series.mean(), series[1:] - series.mean()
        self.rho = float(np.sign((x * y).sum()))

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        r = float(np.asarray(obs).reshape(-1)[self.return_index]) / self.scale
        if self.name == "oracle":
            assert self.phi is not None
            return np.array([np.sign(self.mu + self.phi * (r - self.mu))])
        return np.array([np.sign(self.rho * r)])

    def task_state(self) -> dict[str, np.ndarray]:
        """The estimated sign of the autocorrelation (the oracle's is fixed: empty)."""
        return {} if self.name == "oracle" else {"rho": np.array([self.rho])}
