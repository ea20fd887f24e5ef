"""RL^2 trained with PPO: the option beside the default, back-propagation through time.

RL^2 (Duan et al., 2016) trains a recurrent policy over trials within a task: its hidden state after
the K support days is the adaptation, and it keeps adapting as days come. It can be trained two
ways here, as two algorithms:

- ``rl2`` (:mod:`market_metarl.meta.algos.rl2`): prices do not react to our trades, so the trial's
  PnL is differentiable in the weights and BPTT gives its exact gradient.
- ``rl2_ppo`` (this module, :class:`RL2PPOLearner`, settings in ``[train.rl2_ppo]``): the generic
  model-free route. The GRU body gets a
  tanh-squashed Gaussian head and a value head; actions are sampled, rewarded with the daily log
  returns of the one accounting, and the policy is improved with the clipped PPO objective
  (Schulman et al., 2017) on GAE advantages. It needs no differentiable simulator, but its
  gradient is a noisy score-function estimate.

Why BPTT is the default, measured on the earlier, smaller version of ``envs/synthetic.toml`` (one
series, ~300 training regimes, 106 held-out ones; K=10, H=60, evaluated as
``benchmarks/adaptation.py`` does; seed 0, one torch thread, CPU seconds of training). On the
current config (three series, ~2300 training regimes) BPTT reaches 0.96 of the oracle over 5 seeds
(the README's table); PPO was not re-measured there.

- BPTT, 1200 updates of 64 windows: 0.83 of the oracle's mean Sharpe in 71 s;
- PPO, this module's defaults, 300 updates: 0.56 in about 75 s; 600 updates: 0.55 in 143 s (it
  plateaus; the textbook gamma 0.99 / lambda 0.95 gave 0.50 after 300 updates).

An update of PPO costs about four times one of BPTT (a sampled rollout, then ``epochs`` passes
that recompute every sequence), and its gradient is a noisy score-function estimate where BPTT's
is the exact gradient of the trial's PnL. PPO is kept for rewards or simulators that are not
differentiable, and as the textbook reference. One seed each: read the figures as orders of
magnitude, not as a benchmark.

The recurrent actor-critic, GAE and the clipped surrogate are in
:mod:`market_metarl.meta.algos.rl2_ppo_parts` (importable from here too). Phases of one
:meth:`RL2PPOLearner.step`: # rollout (sample a trial per task window, no gradient),
# advantages (GAE), # optimize (epochs of minibatches over tasks, each sequence recomputed from
``h0`` so the recurrent state sees the current parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from market_metarl.meta.agents import RL2Agent
from market_metarl.meta.algos.rl2_ppo_parts import GRUActorCritic, clipped_surrogate, gae
from market_metarl.meta.episodes import Episode, Windows
from market_metarl.meta.experiment import BuildContext
from market_metarl.meta.optim import LazyAdam
from market_metarl.meta.policies import _squash
from market_metarl.meta.registry import Algorithm
from market_metarl.meta.rollout import PNL_SCALE, day_log_return, held_after_close
from market_metarl.seeding import child_seed
from market_metarl.types import ConfigError


@dataclass(frozen=True)
class RL2PPOConfig:
    """``[train.rl2_ppo]``: RL^2 trained with PPO.

    Attributes:
        hidden: GRU units.
        batch: Task windows per rollout.
        iterations: Updates (0: ``[train] iterations``).
        lr: Adam step size.
        epochs: PPO passes over each rollout.
        minibatches: Minibatches of task windows per pass (at most ``batch``).
        clip: Clip range of the probability ratio (``1 +- clip``).
        gamma: Discount factor of the daily rewards (a weight earns mostly its own day, so a
            short horizon cuts the variance of the advantages).
        gae_lambda: GAE parameter (1: Monte-Carlo returns, 0: one-step TD).
        entropy: Weight of the entropy bonus.
        value_coef: Weight of the value loss.
        init_log_std: Initial log standard deviation of the pre-squash Gaussian actions.
    """

    hidden: int = 32
    batch: int = 64
    iterations: int = 0
    lr: float = 1e-3
    epochs: int = 4
    minibatches: int = 4
    clip: float = 0.2
    gamma: float = 0.9
    gae_lambda: float = 0.9
    entropy: float = 0.0
    value_coef: float = 0.5
    init_log_std: float = -0.5

    def __post_init__(self) -> None:
        """Reject empty sizes, more minibatches than windows, and rates out of range.

        Raises:
            ConfigError: The message names the ``train.rl2_ppo.*`` setting.
        """
        for name in ("hidden", "batch", "epochs", "minibatches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.rl2_ppo.{name} must be >= 1, got {getattr(self, name)}")
        if self.minibatches > self.batch:
            raise ConfigError(
                f"train.rl2_ppo.minibatches ({self.minibatches}) must be <= train.rl2_ppo.batch "
                f"({self.batch}): minibatches split the batch's task windows"
            )
        for name in ("lr", "clip"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"train.rl2_ppo.{name} must be > 0, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"train.rl2_ppo.{name} must be in [0, 1], got {getattr(self, name)}"
                )
        for name in ("iterations", "entropy", "value_coef"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.rl2_ppo.{name} must be >= 0, got {getattr(self, name)}")


class RL2PPOLearner:
    """RL^2 trained with PPO: one rollout of B task windows, then epochs of clipped updates.

    Args:
        policy: The recurrent actor-critic.
        windows: Support/query split (for the ``query_return`` metric).
        lr: Adam step size.
        epochs: Passes over the rollout per update.
        minibatches: Task minibatches per epoch.
        clip: PPO clip range of the probability ratio.
        gamma: Discount factor of the daily rewards.
        lam: GAE parameter.
        entropy_coef: Weight of the entropy bonus.
        value_coef: Weight of the value loss.
        grad_clip: Global gradient-norm clip.
        seed: Seed of the learner's own generator (action samples, minibatch order).
        batch: Task windows per rollout.
        iterations: Updates of a full run.
    """

    name = "rl2_ppo"

    def __init__(
        self,
        policy: GRUActorCritic,
        windows: Windows,
        lr: float = 1e-3,
        epochs: int = 4,
        minibatches: int = 4,
        clip: float = 0.2,
        gamma: float = 0.9,
        lam: float = 0.9,
        entropy_coef: float = 0.0,
        value_coef: float = 0.5,
        grad_clip: float = 1.0,
        seed: int = 0,
        batch: int = 64,
        iterations: int = 400,
    ) -> None:
        """Set up Adam over the actor-critic and the learner's own seeded generator."""
        self.policy, self.windows = policy, windows
        self.batch, self.iterations = batch, iterations
        self.epochs, self.minibatches, self.clip = epochs, minibatches, clip
        self.gamma, self.lam = gamma, lam
        self.entropy_coef, self.value_coef, self.grad_clip = entropy_coef, value_coef, grad_clip
        self.opt = LazyAdam(policy.parameters(), lr=lr)
        self.gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def rollout(self, ep: Episode) -> dict[str, torch.Tensor]:
        """Sample one trial per task window, feeding back the sampled weight and the reward.

        Returns:
            ``x`` GRU inputs ``(B, D, in)``, ``actions`` pre-squash samples ``(B, D, N)``,
            ``logp`` their log-probabilities ``(B, D)``, ``values`` ``(B, D)`` and ``rewards``
            daily log returns in per cent ``(B, D)``.
        """
        pol, b, n = self.policy, ep.batch, ep.n_assets
        h = pol.initial_state(b)
        prev_w, prev_r = torch.zeros(b, n), torch.zeros(b)
        target = torch.zeros(b, n, dtype=torch.float64)
        held = target
        xs, actions, logps, values, rewards = [], [], [], [], []
        sl = ep.position_slice
        for t in range(ep.days):
            if t > 0:
                held = held_after_close(target, ep, t)
            obs = ep.obs[:, t].clone()
            obs[:, sl] = held.to(obs.dtype)
            x = pol.inputs(obs, prev_w, prev_r)
            h = pol.cell(x, h)
            dist = pol.distribution(pol.out(h))
            noise = torch.randn(dist.loc.shape, generator=self.gen)
            action = dist.loc + dist.scale * noise
            w = _squash(action, pol.spec)
            r = day_log_return(ep, t, w, held)
            xs.append(x)
            actions.append(action)
            logps.append(dist.log_prob(action).sum(-1))
            values.append(pol.value(h).squeeze(-1))
            rewards.append(r.float() * PNL_SCALE)
            target, prev_w, prev_r = w.double(), w, r.float()
        return {
            "x": torch.stack(xs, 1),
            "actions": torch.stack(actions, 1),
            "logp": torch.stack(logps, 1),
            "values": torch.stack(values, 1),
            "rewards": torch.stack(rewards, 1),
        }

    def step(self, ep: Episode) -> dict[str, float]:
        """One PPO update on a batch of task windows: rollout, advantages, optimize.

        Returns:
            Means over the minibatch updates of ``loss``, ``policy_loss``, ``value_loss``,
            ``entropy``, ``approx_kl`` and ``clip_frac``; the mean action ``std`` (pre-squash);
            and ``query_return``, the sampled trials' mean daily log return (per cent) on the
            query days.
        """
        # rollout
        roll = self.rollout(ep)
        # advantages: one trial per task window; it ends with the window (no value after it)
        b_rewards, b_values = roll["rewards"], roll["values"]
        b_adv, b_returns = gae(b_rewards, b_values, torch.zeros(ep.batch), self.gamma, self.lam)
        # optimize
        size = max(1, ep.batch // self.minibatches)
        sums = {"loss": 0.0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0}
        clipped, kl, updates = 0.0, 0.0, 0
        for _ in range(self.epochs):
            order = torch.randperm(ep.batch, generator=self.gen)
            for start in range(0, ep.batch, size):
                mb_inds = order[start : start + size]
                means, values = self.policy.sequence(roll["x"][mb_inds])
                dist = self.policy.distribution(means)
                logp = dist.log_prob(roll["actions"][mb_inds]).sum(-1)
                mb_adv = b_adv[mb_inds]
                if mb_adv.numel() > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                policy_loss = clipped_surrogate(logp, roll["logp"][mb_inds], mb_adv, self.clip)
                value_loss = 0.5 * (values - b_returns[mb_inds]).pow(2).mean()
                entropy = dist.entropy().sum(-1).mean()
                loss = policy_loss + self.value_coef * value_loss - self.entropy_coef * entropy
                self.opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
                self.opt.step()
                with torch.no_grad():
                    log_ratio = logp - roll["logp"][mb_inds]
                    kl += float(((log_ratio.exp() - 1) - log_ratio).mean())
                    clipped += float(((log_ratio.exp() - 1).abs() > self.clip).float().mean())
                for key, value in zip(sums, (loss, policy_loss, value_loss, entropy), strict=True):
                    sums[key] += float(value.detach())
                updates += 1
        query = b_rewards[:, self.windows.adapt_days - 1 :]
        return {
            **{k: v / updates for k, v in sums.items()},
            "approx_kl": kl / updates,
            "clip_frac": clipped / updates,
            "std": float(self.policy.log_std.detach().exp().mean()),
            "query_return": float(query.mean()),
        }

    def agent_state(self) -> dict[str, Any]:
        """The actor-critic's parameters and normaliser."""
        return {"policy": self.policy.state_dict()}

    def training_state(self) -> dict[str, Any]:
        """The optimiser and the sampling generator."""
        return {"opt": self.opt.state_dict(), "rng": self.gen.get_state()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state`."""
        self.policy.load_state_dict(state["policy"])

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`training_state`."""
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["rng"])

    def agent(self) -> RL2Agent:
        """Acts with the squashed mean (deterministic), through the same agent as BPTT's RL^2."""
        return RL2Agent(self.policy)


def build(ctx: BuildContext) -> RL2PPOLearner:
    """A fresh PPO-trained RL^2 learner from ``[train]`` and ``[train.rl2_ppo]``."""
    ctx.plain_objective_only("rl2_ppo")
    train = ctx.experiment.train
    cfg: RL2PPOConfig = train.of("rl2_ppo")
    spec = train.policy_spec(ctx.experiment.env, cfg.hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        policy = GRUActorCritic(ctx.obs_dim, ctx.n_assets, spec, cfg.init_log_std)
    if ctx.observations is not None:
        policy.norm.fit(ctx.observations, keep=ctx.position_slice)
    return RL2PPOLearner(
        policy,
        Windows(train.adapt_days, train.horizon),
        lr=cfg.lr,
        epochs=cfg.epochs,
        minibatches=cfg.minibatches,
        clip=cfg.clip,
        gamma=cfg.gamma,
        lam=cfg.gae_lambda,
        entropy_coef=cfg.entropy,
        value_coef=cfg.value_coef,
        grad_clip=train.grad_clip,
        seed=child_seed(ctx.seed, 1),
        batch=cfg.batch,
        iterations=train.iterations_of(cfg.iterations),
    )


ALGORITHM = Algorithm(
    name="rl2_ppo",
    config=RL2PPOConfig,
    build=build,
    summary="RL^2 trained with clipped PPO on sampled actions (the model-free reference)",
)
