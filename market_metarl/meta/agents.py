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

from market_metarl.meta.adapt import Params, adapt, params_of
from market_metarl.meta.episodes import Episode
from market_metarl.meta.policies import GRUPolicy, MLPPolicy
from market_metarl.meta.rollout import gru_rollout, task_losses


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
        """Act with ``start`` until the first :meth:`adapt`.

        Args:
            name: Strategy name (``maml``, ``pooled``, ``finetune``...).
            policy: The MLP the parameter dicts are evaluated with (its normaliser and masks are
                the module's buffers).
            start: Parameters every adaptation starts from (meta-learned or pooled); never
                modified.
            inner: Steps, step size(s) and clipping of the adaptation.
        """
        self.name, self.policy, self.start, self.inner = name, policy, start, inner
        self.params: Params = dict(start)

    def init(self) -> None:
        """Drop the adapted parameters: act with ``start`` again."""
        self.params = dict(self.start)

    def adapt(self, support: Episode) -> None:
        """Take ``inner.steps`` first-order gradient steps from ``start`` on the support's PnL.

        The loss is the policy's objective on the support (:func:`~market_metarl.meta.rollout.
        task_losses`; by default minus the mean daily log return, in per cent) through the one
        :func:`~market_metarl.meta.adapt.adapt` primitive; learned step sizes enter as
        constants. With no steps or an empty support the parameters stay as they are.

        It is :meth:`adapt_many` on a batch of one: the batched matrix products give every
        support the same numbers whatever the batch, so a backtest that adapts all its blocks at
        once (:mod:`~market_metarl.meta.batched`) and paper trading, which adapts one block a
        day, hold the same positions bit for bit.

        Args:
            support: The support days of one task (an episode of batch 1).
        """
        if self.inner.steps == 0 or support.days == 0:
            return
        self.params = {k: v[0] for k, v in self.adapt_many(support).items()}

    def adapt_many(self, supports: Episode) -> Params:
        """:meth:`adapt` on B supports at once: the parameters adapted on each, stacked.

        Every support starts from ``start``; the loss is the sum of the supports' own losses
        (:func:`~market_metarl.meta.rollout.task_losses`, evaluated per task with batched matrix
        products), so each parameter set's gradient is its support's alone, and clipping is per
        support (``per_task``): the same steps as B calls of :meth:`adapt`, up to float rounding.
        Leaves ``self.params`` as it is.

        Args:
            supports: B support windows of equal length (an episode of batch B).

        Returns:
            The parameters by name, each with a leading axis of B (detached).
        """
        b = supports.batch
        start = {k: v.detach().expand(b, *v.shape).clone() for k, v in self.start.items()}
        if self.inner.steps == 0 or supports.days == 0:
            return start
        lr = self.inner.lr
        if isinstance(lr, Mapping):
            lr = {k: v.detach() for k, v in lr.items()}
        adapted = adapt(
            {k: v.requires_grad_(True) for k, v in start.items()},
            lambda p: task_losses(self.policy, p, supports, per_task=True).sum(),
            steps=self.inner.steps,
            lr=lr,
            first_order=True,
            max_grad_norm=self.inner.max_grad_norm,
            per_task=True,
        )
        return {k: v.detach() for k, v in adapted.items()}

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """Target weights ``(N,)`` for the next open from the observation ``(obs_dim,)``.

        ``reward`` is not read: this agent's adaptation lives in its parameters.
        """
        # The weight the pathwise objective trained (expected weight for a categorical head).
        w = self.policy.forward_with(self.params, _as_batch(obs))
        return w.reshape(-1).double().numpy()

    def task_state(self) -> dict[str, np.ndarray]:
        """The adapted parameters, by name in sorted order."""
        return {k: v.detach().numpy() for k, v in sorted(self.params.items())}


class ScratchAgent(GradientAgent):
    """Trained on the support days only, from a fresh initialisation (seeded per task)."""

    def __init__(self, policy: MLPPolicy, inner: InnerLoop, seed: int = 0) -> None:
        """Fit from a fresh initialisation, drawn from ``seed`` at each :meth:`init`.

        Args:
            policy: An MLP of the pooled policy's shape (its normaliser copied from the pooled
                one).
            inner: Steps and step size of the fit on the support days.
            seed: Seed of the initialisation, the same at every reset.
        """
        super().__init__("scratch", policy, params_of(policy), inner)
        self.seed = seed

    def init(self) -> None:
        """Draw the fresh initialisation from ``seed`` again and start from it.

        Weight matrices ``(out, in)`` are uniform in ``+-1/sqrt(in)``; biases are zero.
        """
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
        """Start from a fresh recurrent state (:meth:`init`).

        Args:
            policy: The trained GRU policy (by BPTT or by PPO).
            name: Strategy name.
        """
        self.name, self.policy = name, policy
        self.init()

    def init(self) -> None:
        """Back to the prior: zero hidden state, flat previous weights ``(1, N)``, zero return."""
        self.h = self.policy.initial_state(1)
        self.prev_w = torch.zeros(1, self.policy.n_assets)
        self.prev_r = torch.zeros(1)
        self.started = False

    @torch.no_grad()
    def adapt(self, support: Episode) -> None:
        """Run the GRU over the support days from a fresh state and keep where it ends.

        The kept state is the final hidden state, the last support weights and the log return
        of the last support day. An empty support leaves the state as it is.

        Args:
            support: The support days of one task (an episode of batch 1).
        """
        if support.days == 0:
            return
        weights, _, self.h, last_r = gru_rollout(self.policy, None, support)
        self.prev_w, self.prev_r = weights[:, -1].float(), last_r.float()

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """Target weights ``(N,)`` for the next open; the hidden state takes in the day.

        Args:
            obs: The observation after today's close ``(obs_dim,)``.
            reward: Log return of the day just marked (a fraction; the GRU reads it in per
                cent). Not read on the first call after :meth:`init`: the previous return is
                then the state's own (zero, or the support's last day after :meth:`adapt`).
        """
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
        """Hold ``weights`` whatever happens.

        Args:
            weights: Target weight of each asset ``(N,)``, or one float for a single asset.
            name: Strategy name.
        """
        self.name, self.weights = name, np.atleast_1d(np.asarray(weights, dtype=np.float64))

    def init(self) -> None:
        """Do nothing: there is no adaptation to forget."""
        return None

    def adapt(self, support: Episode) -> None:
        """Ignore the support days: the weights never change."""
        return None

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """A copy of the fixed weights, whatever the observation."""
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
        """Pick the rule by ``name``; the plug-in starts flat until it has adapted.

        Args:
            name: ``oracle`` or ``plugin`` (anything but ``oracle`` acts as the plug-in).
            return_index: Observation index of the decision day's ``log_ret`` feature.
            scale: Scale of that feature in the observation: the log return is
                ``obs[return_index] / scale``.
            phi: The task's AR(1) coefficient (the oracle only).
            mu: The task's AR(1) mean daily log return (the oracle only).
        """
        self.name, self.return_index, self.scale = name, return_index, scale
        self.phi, self.mu = phi, mu
        self.rho = 0.0

    def init(self) -> None:
        """Forget the estimated sign (0: the plug-in holds no position until it adapts)."""
        self.rho = 0.0

    def adapt(self, support: Episode) -> None:
        """Estimate the sign of the lag-1 autocorrelation from the support days (plug-in only).

        The series is the support's ``log_ret`` features plus its last day's return (from its
        closes), demeaned; ``rho`` is the sign of ``sum_t x[t] x[t+1]``. The oracle ignores
        the support.
        """
        if self.name == "oracle":
            return
        r = support.obs[0, :, self.return_index].double().numpy() / self.scale
        last = np.log(support.closes[0, -1, 0] / support.closes[0, -2, 0]).item()
        series = np.append(r, last)
        x, y = series[:-1] - series.mean(), series[1:] - series.mean()
        self.rho = float(np.sign((x * y).sum()))

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """Weight ``(1,)`` in ``{-1, 0, 1}``: the sign of the return the rule expects tomorrow.

        Today's log return is read from ``obs`` (``reward`` is not read).
        """
        r = float(np.asarray(obs).reshape(-1)[self.return_index]) / self.scale
        if self.name == "oracle":
            assert self.phi is not None
            return np.array([np.sign(self.mu + self.phi * (r - self.mu))])
        return np.array([np.sign(self.rho * r)])

    def task_state(self) -> dict[str, np.ndarray]:
        """The estimated sign of the autocorrelation (the oracle's is fixed: empty)."""
        return {} if self.name == "oracle" else {"rho": np.array([self.rho])}
