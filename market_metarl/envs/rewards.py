"""Reward components: small, named, resolved through a closed registry.

Every component sees, after each day is marked, the day's log return of equity net of all costs
``r_t = log(E_t / E_{t-1})`` and the drawdown ``dd_t = 1 - E_t / max_{s<=t} E_s`` before and after
the day. Components work on Python floats (the single env) and on ``(B,)`` arrays (the batched
env) with the same expressions; stateful ones keep their state per book and reset per book.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from market_metarl.envs.costs import relu
from market_metarl.envs.spec import EnvSpec
from market_metarl.types import ConfigError

DSR_VAR_FLOOR = 1e-12
"""Below this second-moment spread the differential Sharpe ratio is defined as 0."""


class Reward:
    """Base of the reward components."""

    name: ClassVar[str] = ""

    def reset(self, size: int | None = None) -> None:
        """Fresh state for one book (``size`` None, float state) or ``size`` books (arrays)."""

    def reset_rows(self, rows: np.ndarray) -> None:
        """Fresh state for the books where ``rows`` (a bool mask) is True (array state only)."""

    def __call__(self, log_ret: Any, drawdown: Any, prev_drawdown: Any) -> Any:
        """The reward of one step, updating any running state.

        Args:
            log_ret: Log equity growth of the step, net of costs (float, or ``(B,)`` array).
            drawdown: Fractional drawdown from the running equity peak after the step.
            prev_drawdown: The same before the step.
        """
        raise NotImplementedError


class LogReturn(Reward):
    """``reward_t = r_t = log(E_t / E_{t-1})``: log growth of equity net of costs.

    Summed over an episode it is the log of final over initial equity.
    """

    name = "log_return"

    def __call__(self, log_ret: Any, drawdown: Any, prev_drawdown: Any) -> Any:
        """``log_ret`` itself."""
        return log_ret


class DrawdownPenalised(Reward):
    """``reward_t = r_t - penalty * max(dd_t - dd_{t-1}, 0)``: log return minus the drawdown added.

    Args:
        penalty: Weight of the drawdown increase (``EnvSpec.drawdown_penalty``).
    """

    name = "drawdown_penalised"

    def __init__(self, penalty: float) -> None:
        """Keep ``penalty`` (>= 0, checked by :class:`~market_metarl.envs.spec.EnvSpec`)."""
        self.penalty = float(penalty)

    def __call__(self, log_ret: Any, drawdown: Any, prev_drawdown: Any) -> Any:
        """``log_ret`` less ``penalty`` times the drawdown added this step (recoveries are not rewarded)."""
        return log_ret - self.penalty * relu(drawdown - prev_drawdown)


class DifferentialSharpe(Reward):
    """Differential Sharpe ratio (Moody & Saffell 1998, "Reinforcement learning for trading").

    With exponential moving moments ``A`` (of ``r``) and ``B`` (of ``r**2``), rate ``eta``:

        dA = r_t - A_{t-1}          dB = r_t**2 - B_{t-1}
        D_t = (B_{t-1} * dA - 0.5 * A_{t-1} * dB) / (B_{t-1} - A_{t-1}**2) ** 1.5
        A_t = A_{t-1} + eta * dA    B_t = B_{t-1} + eta * dB

    ``D_t`` is the first-order effect of ``r_t`` on the moving Sharpe ratio. It is 0 while
    ``B - A**2 <= 1e-12`` (the first day of an episode, when ``A = B = 0``); the first few days can
    be large while the moments settle.

    Args:
        eta: Adaptation rate in (0, 1) (``EnvSpec.dsr_eta``).
    """

    name = "differential_sharpe"

    def __init__(self, eta: float) -> None:
        """Start with zero moments ``A = B = 0`` for one book; :meth:`reset` sizes them for a batch."""
        self.eta = float(eta)
        self.a: Any = 0.0
        self.b: Any = 0.0

    def reset(self, size: int | None = None) -> None:
        """Zero the moments: floats for one book (``size`` None), ``(size,)`` arrays for a batch."""
        self.a = 0.0 if size is None else np.zeros(size)
        self.b = 0.0 if size is None else np.zeros(size)

    def reset_rows(self, rows: np.ndarray) -> None:
        """Zero the moments of the books where the bool mask ``rows`` is True."""
        self.a[rows] = 0.0
        self.b[rows] = 0.0

    def __call__(self, log_ret: Any, drawdown: Any, prev_drawdown: Any) -> Any:
        """``D_t`` from the moments before the step, then move the moments by ``eta`` towards ``r_t``."""
        a, b = self.a, self.b
        d_a = log_ret - a
        d_b = log_ret * log_ret - b
        var = b - a * a
        safe = DSR_VAR_FLOOR + relu(var - DSR_VAR_FLOOR)
        reward = (b * d_a - 0.5 * a * d_b) / safe**1.5 * (var > DSR_VAR_FLOOR)
        self.a = a + self.eta * d_a
        self.b = b + self.eta * d_b
        return reward


REWARDS: dict[str, type[Reward]] = {
    LogReturn.name: LogReturn,
    DifferentialSharpe.name: DifferentialSharpe,
    DrawdownPenalised.name: DrawdownPenalised,
}
"""The closed registry of reward components, by config name."""


def make_reward(spec: EnvSpec) -> Reward:
    """The reward component named by ``spec.reward``, with its parameters from ``spec``."""
    if spec.reward not in REWARDS:
        raise ConfigError(
            f"env.reward must be one of {', '.join(map(repr, REWARDS))}, got {spec.reward!r}"
        )
    if spec.reward == DifferentialSharpe.name:
        return DifferentialSharpe(spec.dsr_eta)
    if spec.reward == DrawdownPenalised.name:
        return DrawdownPenalised(spec.drawdown_penalty)
    return LogReturn()
