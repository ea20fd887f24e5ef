"""The two contracts other layers rely on: :class:`Learner` and :class:`Agent`.

A :class:`Learner` is what the trainer drives; an :class:`Agent` is what the benchmark, the
backtest, paper trading and the diagnostics may ask.

They are Protocols: an algorithm satisfies them by shape, and nothing outside an algorithm's own
module reads its internals (no ``getattr`` on agents or learners anywhere else).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from market_metarl.meta.episodes import Episode

MIN_ADAPT_DAYS = 2
"""The smallest K: adapting needs one support decision and the day it earns."""


def check_adapt_days(k: int, where: str) -> int:
    """``k`` if it is a valid number of adaptation days K (the one place K is validated).

    Args:
        k: Support days an agent adapts on (the support is its first ``k - 1`` decisions, their
            returns through day ``k - 1``).
        where: The setting's name in the message (``train.adapt_days``, ``--adapt-days``...).

    Raises:
        ConfigError: ``k`` is under :data:`MIN_ADAPT_DAYS`.
    """
    from market_metarl.types import ConfigError

    if k < MIN_ADAPT_DAYS:
        raise ConfigError(
            f"{where} must be >= {MIN_ADAPT_DAYS} (one support decision and the day it earns), "
            f"got {k}"
        )
    return k


@runtime_checkable
class Agent(Protocol):
    """What every adaptive or baseline trader implements.

    - ``init()`` forgets any adaptation (back to the meta-learned prior, fresh recurrent state);
    - ``adapt(support)`` takes the support days (an Episode of one task) and adapts;
    - ``act(obs, reward)`` maps the observation after a close (and the log return of the day just
      marked) to target weights for the next open;
    - ``task_state()`` is the agent's adapted state as named arrays (adapted parameters, a
      recurrent state, a posterior): what paper trading hashes into its ledger and what the
      task-inference probes read. An agent with no adaptable state returns an empty dict.
    """

    name: str

    def init(self) -> None:
        """Forget any adaptation."""

    def adapt(self, support: Episode) -> None:
        """Adapt on the support days of one task."""

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """Target weights for the next open."""
        ...

    def task_state(self) -> dict[str, np.ndarray]:
        """The adapted state, as named float arrays (empty when there is none)."""
        ...


@runtime_checkable
class Learner(Protocol):
    """What the trainer drives: one update per sampled batch, a checkpointable state, an agent.

    The state is split in two: :meth:`agent_state` (what an agent needs: network parameters,
    normalisers, learned step sizes) and :meth:`training_state` (optimisers, private RNGs), so a
    backtest rebuilds agents without optimisers.
    """

    name: str
    batch: int
    """Task windows sampled per :meth:`step`."""
    iterations: int
    """Updates a full training run makes."""

    def step(self, episode: Episode) -> dict[str, float]:
        """One update on a batch of task windows; named scalar metrics."""
        ...

    def agent_state(self) -> dict[str, Any]:
        """Tensors an agent is rebuilt from."""
        ...

    def training_state(self) -> dict[str, Any]:
        """Optimiser and RNG state needed to resume training exactly."""
        ...

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`agent_state` returned."""

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`training_state` returned."""

    def agent(self) -> Agent:
        """The trained agent (its adaptation included)."""
        ...
