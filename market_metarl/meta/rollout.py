"""Replay a policy over an :class:`~market_metarl.meta.episodes.Episode`, differentiably.

The weights a policy picks are a function of the observations and, when the policy reads its own
position, of its previous weights (after their drift, exactly as the env reports them). The PnL is
then :func:`market_metarl.envs.accounting.log_returns` of those weights: the one accounting. The
gradient of the PnL with respect to the policy's parameters is exact (pathwise), which has far less
variance than a score-function (REINFORCE) estimate; :func:`pg_loss` is that alternative.

With ``per_task`` the parameters carry a leading task axis (one set per task of the episode, as a
vectorised MAML meta-batch has them): each day is then still one call for all tasks
(:meth:`~market_metarl.meta.policies.MLPPolicy.forward_per_task`), each task with its own
parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from market_metarl.envs.accounting import drift, log_returns
from market_metarl.meta.adapt import Params
from market_metarl.meta.episodes import Episode
from market_metarl.meta.objectives import PNL_SCALE, task_objective
from market_metarl.meta.policies import GRUPolicy, MLPPolicy


def held_after_close(prev_target: torch.Tensor, ep: Episode, t: int) -> torch.Tensor:
    """Weights held at the close of decision day ``t`` given the target executed at its open."""
    ratio = (ep.closes[:, t] / ep.opens[:, t]).to(prev_target.dtype)
    return drift(prev_target, ratio)


def _with_position(obs: torch.Tensor, ep: Episode, held: torch.Tensor) -> torch.Tensor:
    sl = ep.position_slice
    return torch.cat([obs[..., : sl.start], held.to(obs.dtype), obs[..., sl.stop :]], -1)


def mlp_weights(
    policy: MLPPolicy, params: Mapping[str, torch.Tensor], ep: Episode, per_task: bool = False
) -> torch.Tensor:
    """Target weights ``(B, D, N)`` of an MLP policy over the episode (starting flat).

    With ``per_task`` every tensor of ``params`` has a leading axis of the episode's B tasks.
    """
    if not policy.spec.position_input:
        return _forward(policy, params, ep.obs, per_task)
    weights = []
    target = torch.zeros(ep.batch, ep.n_assets, dtype=torch.float64)
    held = target
    for t in range(ep.days):
        if t > 0:
            held = held_after_close(target, ep, t)
        obs = _with_position(ep.obs[:, t], ep, held)
        target = _forward(policy, params, obs, per_task).double()
        weights.append(target)
    return torch.stack(weights, 1)


def _forward(
    policy: MLPPolicy, params: Mapping[str, torch.Tensor], obs: torch.Tensor, per_task: bool
) -> torch.Tensor:
    if per_task:
        return policy.forward_per_task(params, obs)
    return policy.forward_with(params, obs)


def episode_log_returns(ep: Episode, weights: torch.Tensor) -> torch.Tensor:
    """Daily log returns ``(B, D)`` of target weights ``(B, D, N)`` (flat before the first day)."""
    return log_returns(weights.double(), ep.opens, ep.closes, ep.cost_rate, ep.borrow_daily)


def mlp_loss(policy: MLPPolicy, params: Mapping[str, torch.Tensor], ep: Episode) -> torch.Tensor:
    """The policy's objective over the episode, averaged over its tasks (see :func:`task_losses`).

    Under the default objective: minus the mean daily log return (per cent).
    """
    if policy.spec.objective.is_default:  # the expression of the recorded parameter digests
        return -episode_log_returns(ep, mlp_weights(policy, params, ep)).mean() * PNL_SCALE
    return task_losses(policy, params, ep).mean()


def task_losses(
    policy: MLPPolicy, params: Mapping[str, torch.Tensor], ep: Episode, per_task: bool = False
) -> torch.Tensor:
    """Each task's loss ``(B,)`` under the policy's objective (``policy.spec.objective``).

    The default objective is minus the mean daily log return (per cent);
    :func:`~market_metarl.meta.objectives.task_objective` has the others. With ``per_task`` the
    parameters carry a leading task axis (see :func:`mlp_weights`).
    """
    weights = mlp_weights(policy, params, ep, per_task)
    return task_objective(episode_log_returns(ep, weights), weights, policy.spec.objective)


def gru_rollout(
    policy: GRUPolicy,
    params: Mapping[str, torch.Tensor] | None,
    ep: Episode,
    h: torch.Tensor | None = None,
    prev_weight: torch.Tensor | None = None,
    prev_reward: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recurrent policy over the episode, feeding back its weights and daily returns.

    Returns:
        ``(weights (B, D, N), log returns (B, D), final hidden state, last reward)``.
    """
    b, n = ep.batch, ep.n_assets
    h = policy.initial_state(b) if h is None else h
    prev_w = torch.zeros(b, n) if prev_weight is None else prev_weight.float()
    prev_r = torch.zeros(b) if prev_reward is None else prev_reward.float()
    target = torch.zeros(b, n, dtype=torch.float64)
    held = target
    weights, rets = [], []
    for t in range(ep.days):
        if t > 0:
            held = held_after_close(target, ep, t)
        obs = _with_position(ep.obs[:, t], ep, held)
        if params is None:
            w, h = policy(obs, prev_w, prev_r, h)
        else:
            w, h = call_gru(policy, params, obs, prev_w, prev_r, h)
        r = day_log_return(ep, t, w, held)
        weights.append(w)
        rets.append(r)
        target, prev_w, prev_r = w.double(), w, r.float()
    return torch.stack(weights, 1), torch.stack(rets, 1), h, prev_r


def day_log_return(ep: Episode, t: int, target: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """Log return ``(B,)`` of day ``t+1``: one day of the one accounting.

    Args:
        ep: The episode whose prices are read (opens and closes of day ``t+1``).
        t: Decision day (the target is set after its close, executed at the next open).
        target: Target weights ``(B, N)`` decided after the close of ``t``.
        held: Weights ``(B, N)`` held at that close (what trading to ``target`` costs from).
    """
    day = ep.window(t, t + 1)
    return log_returns(
        target.double().unsqueeze(1),
        day.opens,
        day.closes,
        ep.cost_rate,
        ep.borrow_daily,
        held.double().unsqueeze(1),
    )[:, 0]


def call_gru(
    policy: GRUPolicy,
    params: Mapping[str, torch.Tensor],
    obs: torch.Tensor,
    prev_w: torch.Tensor,
    prev_r: torch.Tensor,
    h: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the recurrent policy evaluated with ``params``."""
    out: tuple[torch.Tensor, torch.Tensor] = torch.func.functional_call(
        policy, dict(params), (obs, prev_w, prev_r, h)
    )
    return out


def pg_loss(
    policy: MLPPolicy,
    params: Mapping[str, torch.Tensor],
    ep: Episode,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Score-function (REINFORCE) loss with a per-day mean baseline: the plain estimator.

    Samples an action per day from the policy's distribution, computes the realised daily log
    returns with the same accounting, and weights each log-probability by the return-to-go minus
    its batch mean. Unbiased, but far noisier than :func:`mlp_loss`; kept as an option.
    """
    obs = ep.obs
    dist = call_distribution(policy, params, obs)
    with torch.no_grad():  # the score function differentiates log p(a), never the sample
        sample = dist.sample() if generator is None else _sample(dist, generator)
    weights = policy.weight_of(sample, obs).double()
    with torch.no_grad():
        rets = episode_log_returns(ep, weights) * PNL_SCALE
        to_go = rets.flip(1).cumsum(1).flip(1)
        # batch-mean baseline per day; a lone task has no batch to average over
        adv = to_go - to_go.mean(0, keepdim=True) if ep.batch > 1 else to_go
    logp = dist.log_prob(sample)
    if logp.dim() == 3:
        logp = logp.sum(-1)
    return -(logp * adv).mean()


def call_distribution(
    policy: MLPPolicy, params: Mapping[str, torch.Tensor], obs: torch.Tensor
) -> torch.distributions.Distribution:
    """The policy's action distribution at ``obs``, evaluated with ``params``."""
    raw = torch.func.functional_call(policy, dict(params), (obs,), {"raw": True})
    return policy.distribution_from_raw(raw, params.get("log_std"))


def _sample(dist: torch.distributions.Distribution, generator: torch.Generator) -> torch.Tensor:
    if isinstance(dist, torch.distributions.Categorical):
        flat = dist.probs.reshape(-1, dist.probs.shape[-1])
        return torch.multinomial(flat, 1, generator=generator).reshape(dist.probs.shape[:-1])
    assert isinstance(dist, torch.distributions.Normal)
    noise = torch.randn(dist.loc.shape, generator=generator)
    return dist.loc + dist.scale * noise


def loss_fn(
    estimator: str, gen: torch.Generator | None
) -> Callable[[MLPPolicy, Params, Episode], torch.Tensor]:
    """The MLP learners' training loss ``(policy, params, episode) -> scalar``.

    Args:
        estimator: ``pathwise`` gives :func:`mlp_loss`; any other value the score-function
            :func:`pg_loss`.
        gen: Generator of the score-function loss's action samples (None: torch's global RNG).
    """
    if estimator == "pathwise":
        return mlp_loss
    return lambda policy, params, ep: pg_loss(policy, params, ep, gen)
