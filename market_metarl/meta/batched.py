"""The backtest's protocols for gradient agents, every block at once (the fast path).

A gradient agent (:class:`~market_metarl.meta.agents.GradientAgent`: MAML, pooled, fine-tune,
scratch) adapts each block of a protocol from the same start parameters on that block's own K
support days, so the blocks are independent: they adapt as one batched computation with one
parameter set per block (a leading block axis, as vectorised MAML adapts a meta-batch), through
the one :func:`~market_metarl.meta.adapt.adapt` primitive with ``per_task`` clipping. Then:

- a policy that does not read its held weight (``input_mask`` zero over the position) acts on
  every decision day of every block in one batched forward pass;
- one that reads it is replayed day by day: the regime protocol's segments (each from a flat
  book) side by side, one batched step a day; the rolling protocol's blocks in order (each starts
  from the weights the previous one left), one row a day, as :func:`~market_metarl.meta.protocol.
  act_days` does minus the daily PnL, which a gradient agent does not read.

The adaptation is exactly the day-by-day path's: ``GradientAgent.adapt`` is
:meth:`~market_metarl.meta.agents.GradientAgent.adapt_many` on a batch of one, and batched matrix
products give each support the same numbers whatever the batch. So a rolling backtest of a policy
that reads its position holds, bit for bit, the positions of
:func:`~market_metarl.meta.protocol.rolling_targets` and of paper trading (which replays it). The
one-pass rollouts (a policy that ignores its position; regime segments side by side) use batched
products over many days instead of ``act``'s one-day ones: the same positions up to float32
rounding (a test bounds the gap at 1e-5). Timing is the protocol's: a block's support ends at the
close of its adaptation day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from market_metarl.envs.accounting import drift
from market_metarl.meta.agents import GradientAgent
from market_metarl.meta.episodes import Episode
from market_metarl.meta.protocol import rolling_blocks
from market_metarl.meta.rollout import held_after_close
from market_metarl.types import DataError

Block = tuple[int, int]


def supports_of(ep: Episode, rows: Sequence[int], k_days: int) -> Episode:
    """The K-day supports ending at the close of each of ``rows``, stacked as a batch of tasks.

    Row ``b`` is what ``adapt_at(agent, ep, rows[b], k_days)`` adapts on:
    ``ep.window(a - k_days + 1, a)`` of a one-task episode.

    Raises:
        DataError: A row has fewer than ``k_days`` days of history.
    """
    for a in rows:
        if a - k_days + 1 < 0:
            raise DataError(
                f"adapting at decision day {a} needs {k_days} days of history, only {a + 1} exist"
            )
    lo = torch.as_tensor([a - k_days + 1 for a in rows], dtype=torch.long)
    days = lo[:, None] + torch.arange(k_days - 1)
    prices = lo[:, None] + torch.arange(k_days)
    return replace(ep, obs=ep.obs[0, days], opens=ep.opens[0, prices], closes=ep.closes[0, prices])


def per_block_params(
    agent: GradientAgent, ep: Episode, blocks: Sequence[Block], k_days: int, adapt: bool
) -> dict[str, torch.Tensor]:
    """Each block's parameters, with a leading block axis: adapted, or the start (``adapt=False``).

    The agent is reset first (a scratch agent draws its seeded initialisation), as
    ``adapt_at`` resets it before every block.
    """
    agent.init()
    if adapt:
        with torch.enable_grad():
            return agent.adapt_many(supports_of(ep, [a for a, _ in blocks], k_days))
    return {k: v.detach().expand(len(blocks), *v.shape) for k, v in agent.start.items()}


def reads_position(agent: GradientAgent, ep: Episode) -> bool:
    """Whether the agent's policy reads the held weight (its input mask is not zero there)."""
    return bool(agent.policy.input_mask[ep.position_slice].ne(0).any())


def _padded_rows(blocks: Sequence[Block], last: int) -> torch.Tensor:
    """Decision rows ``(B, L)`` of each block, padded to the longest with row ``last``."""
    width = max(b - a for a, b in blocks)
    rows = torch.as_tensor([a for a, _ in blocks], dtype=torch.long)[:, None] + torch.arange(width)
    return rows.clamp(max=last)


def _unpad(weights: torch.Tensor, blocks: Sequence[Block]) -> np.ndarray:
    """The rows ``(sum of block lengths, N)`` of padded block weights ``(B, L, N)``, in order."""
    w = weights.detach().double().numpy()
    return np.concatenate([w[i, : b - a] for i, (a, b) in enumerate(blocks)])


@torch.no_grad()
def _stateless(
    agent: GradientAgent, ep: Episode, blocks: Sequence[Block], params: dict[str, torch.Tensor]
) -> np.ndarray:
    """Weights of a policy that ignores its position: one forward pass over every block's days."""
    rows = _padded_rows(blocks, ep.days - 1)
    return _unpad(agent.policy.forward_per_task(params, ep.obs[0, rows]), blocks)


@torch.no_grad()
def _segments(
    agent: GradientAgent, ep: Episode, blocks: Sequence[Block], params: dict[str, torch.Tensor]
) -> np.ndarray:
    """Weights of independent blocks, each from a flat book, one batched step a day.

    The held weight enters the float32 observation after a float64 drift, as in ``act_days``.
    """
    rows = _padded_rows(blocks, ep.days - 1)
    prices = torch.cat([rows, (rows[:, -1:] + 1).clamp(max=ep.days)], 1)
    side = replace(ep, obs=ep.obs[0, rows], opens=ep.opens[0, prices], closes=ep.closes[0, prices])
    target = torch.zeros(side.batch, side.n_assets, dtype=torch.float64)
    out = []
    for t in range(side.days):
        held = held_after_close(target, side, t) if t > 0 else target
        obs = side.obs[:, t].clone()
        obs[:, ep.position_slice] = held.float()
        target = agent.policy.forward_per_task(params, obs).double()
        out.append(target)
    return _unpad(torch.stack(out, 1), blocks)


@torch.no_grad()
def _chained(
    agent: GradientAgent, ep: Episode, blocks: Sequence[Block], params: dict[str, torch.Tensor]
) -> np.ndarray:
    """Weights of consecutive blocks day by day, each from the weights the previous one left.

    The same operations as ``act_days`` (float32 observation with the held weight, float64
    drift), without its daily log return.
    """
    opens, closes = ep.opens[0].numpy(), ep.closes[0].numpy()
    obs_table, sl, n = ep.obs[0].numpy(), ep.position_slice, ep.n_assets
    held = np.zeros(n)
    out = []
    for i, (a, b) in enumerate(blocks):
        block_params = {k: v[i] for k, v in params.items()}
        for t in range(a, b):
            obs = obs_table[t].copy()
            obs[sl] = held
            w = agent.policy.forward_with(block_params, torch.from_numpy(obs).reshape(1, -1))
            target = w.reshape(-1).double().numpy()
            out.append(target)
            held = drift(target[None], (closes[t + 1] / opens[t + 1])[None])[0]
    return np.array(out).reshape(-1, n)


def block_targets(
    agent: GradientAgent,
    ep: Episode,
    blocks: Sequence[Block],
    k_days: int,
    chained: bool,
    adapt: bool = True,
) -> np.ndarray:
    """Target weights ``(rows of the blocks, N)`` of a gradient agent over protocol blocks.

    Args:
        agent: The gradient agent (reset here; left holding the last block's parameters).
        ep: One-task episode of the market view.
        blocks: ``(adapt_row, stop_row)`` in order, each at least one day long.
        k_days: K support days.
        chained: Each block starts from the weights the previous one left (rolling); otherwise
            every block starts flat (regime segments).
        adapt: Adapt each block (False: act with the start parameters, as a frozen agent).
    """
    if not blocks:
        return np.zeros((0, ep.n_assets))
    params = per_block_params(agent, ep, blocks, k_days, adapt)
    agent.params = {k: v[-1] for k, v in params.items()}
    if not reads_position(agent, ep):
        return _stateless(agent, ep, blocks, params)
    if chained:
        return _chained(agent, ep, blocks, params)
    return _segments(agent, ep, blocks, params)


def rolling_targets_batched(
    agent: GradientAgent,
    ep: Episode,
    start: int,
    stop: int,
    k_days: int,
    every: int,
    adapt: bool = True,
) -> np.ndarray:
    """:func:`~market_metarl.meta.protocol.rolling_targets` of a gradient agent, batched.

    Returns:
        Target weights ``(stop - start, N)`` of decision days ``start..stop-1``.
    """
    return block_targets(agent, ep, rolling_blocks(start, stop, every), k_days, True, adapt)
