"""Environment settings: one frozen dataclass, validated on construction.

Built from the ``[env]`` table of a task-distribution TOML with :func:`market_metarl.config.build`,
so every field is a config field with its meaning documented here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from market_metarl.data.features import FeatureSpec
from market_metarl.types import ConfigError

ActionKind = Literal["discrete", "continuous"]
RewardName = Literal["log_return", "differential_sharpe", "drawdown_penalised"]

ACTION_KINDS: tuple[str, ...] = ("discrete", "continuous")
REWARD_NAMES: tuple[str, ...] = ("log_return", "differential_sharpe", "drawdown_penalised")


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"env.{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
        )


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigError(f"env.{name} must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class EnvSpec:
    """How a task becomes an MDP: observation, actions, reward and episode end."""

    window: int = 32
    """Days of features in each observation, ending at the decision day (>= 1)."""

    action: ActionKind = "discrete"
    """``"discrete"``: pick one of ``levels``; ``"continuous"``: a target weight in a Box."""

    levels: tuple[float, ...] = (-1.0, 0.0, 1.0)
    """Target weights of the discrete actions, clipped to ``[-max_leverage, max_leverage]``."""

    max_leverage: float = 1.0
    """Largest gross exposure ``sum_i |w_i|`` as a fraction of equity (> 0)."""

    long_only: bool = False
    """Forbid short positions: negative levels are dropped and the Box starts at 0."""

    reward: RewardName = "log_return"
    """Reward component: ``"log_return"``, ``"differential_sharpe"`` or ``"drawdown_penalised"``."""

    drawdown_penalty: float = 1.0
    """Weight of the drawdown increase in ``"drawdown_penalised"`` (>= 0)."""

    dsr_eta: float = 0.01
    """Adaptation rate of the differential Sharpe ratio's moving moments, in (0, 1)."""

    max_drawdown: float = 0.5
    """Terminate when equity falls this fraction below its running peak, in (0, 1];
    1.0 disables the stop."""

    ruin_equity: float = 0.05
    """Terminate when equity falls below this fraction of the initial cash, in (0, 1)."""

    include_time: bool = False
    """Append the fraction of the episode elapsed (days elapsed / tradable days) to observations."""

    random_start: bool = False
    """Start each episode at a random day in the first half of the task (uses ``np_random``)."""

    initial_cash: float = 100_000.0
    """Starting cash in account currency (> 0); matters for the minimum fee and market impact."""

    features: FeatureSpec = field(default_factory=FeatureSpec)
    """Causal features read by the observation window."""

    def __post_init__(self) -> None:
        """Reject a setting out of its documented range, naming the ``env.`` field and the valid values."""
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"env.window must be an integer >= 1, got {self.window!r}")
        _one_of("action", self.action, ACTION_KINDS)
        _one_of("reward", self.reward, REWARD_NAMES)
        if _number("max_leverage", self.max_leverage) <= 0:
            raise ConfigError(
                f"env.max_leverage must be > 0, got {self.max_leverage!r}; use 1.0 for no leverage"
            )
        if not self.levels:
            raise ConfigError("env.levels must list at least one target weight, got ()")
        for level in self.levels:
            _number("levels", level)
        if self.long_only and self.action == "discrete" and all(lv < 0 for lv in self.levels):
            raise ConfigError(
                f"env.levels={self.levels} has no level >= 0, but env.long_only is true; "
                "add 0.0 or a positive level"
            )
        if _number("drawdown_penalty", self.drawdown_penalty) < 0:
            raise ConfigError(f"env.drawdown_penalty must be >= 0, got {self.drawdown_penalty!r}")
        if not 0 < _number("dsr_eta", self.dsr_eta) < 1:
            raise ConfigError(f"env.dsr_eta must be in (0, 1), got {self.dsr_eta!r}")
        if not 0 < _number("max_drawdown", self.max_drawdown) <= 1:
            raise ConfigError(
                f"env.max_drawdown must be in (0, 1], got {self.max_drawdown!r}; "
                "use 1.0 to disable the drawdown stop"
            )
        if not 0 < _number("ruin_equity", self.ruin_equity) < 1:
            raise ConfigError(f"env.ruin_equity must be in (0, 1), got {self.ruin_equity!r}")
        if _number("initial_cash", self.initial_cash) <= 0:
            raise ConfigError(f"env.initial_cash must be > 0, got {self.initial_cash!r}")
        if not isinstance(self.features, FeatureSpec):
            raise ConfigError(f"env.features must be a FeatureSpec table, got {self.features!r}")


def env_spec_from_config(cfg: Mapping[str, Any]) -> EnvSpec:
    """The :class:`EnvSpec` of a parsed task-distribution config.

    Reads the ``[env]`` table, and the ``[features]`` table (top level, as in ``envs/*.toml``)
    into ``EnvSpec.features``; both strictly (unknown keys raise :class:`ConfigError`).
    """
    from market_metarl.config import build

    env_table = dict(cfg.get("env") or {})
    if "features" in cfg:
        if "features" in env_table:
            raise ConfigError("give the features in [features] or in [env.features], not both")
        env_table["features"] = dict(cfg["features"] or {})
    return build(EnvSpec, env_table, "env")
