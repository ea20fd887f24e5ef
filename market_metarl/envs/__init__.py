"""Environments: cost model, simulator, observations, actions, rewards and the Gymnasium envs.

Importing this package registers two Gymnasium ids (:mod:`market_metarl.envs.registration`;
``import market_metarl`` does too), lazily: the entry points are strings, so no data is read until
``gym.make``.

- ``market_metarl/Trading-v0``: :class:`TradingEnv`, bundled SPY 2010-01-01..2012-12-31 by default
  (``gym.make("market_metarl/Trading-v0", task=..., env_spec=...)`` overrides it, and so do plain
  keywords: ``gym.make("market_metarl/Trading-v0", symbol="QQQ", window=10, fee_bps=5)``, see
  :mod:`market_metarl.envs.make`);
- ``market_metarl/Portfolio-v0``: :class:`PortfolioEnv`, bundled SPY, IWM and EEM over the same dates
  (``symbols=[...]`` or ``sources=[...]`` and the same other keywords).

Both render with ``render_mode="ansi"`` (one line of text) or ``"rgb_array"`` (a price / position /
equity chart); see :mod:`market_metarl.envs.render`.

The env classes (and :class:`EnvSpec`) are imported on first attribute access, so this package
stays light: importing it loads neither pandas nor torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from market_metarl.envs.registration import PORTFOLIO_ID, TRADING_ID, register_envs

if TYPE_CHECKING:
    from market_metarl.envs.market import TaskMarket
    from market_metarl.envs.portfolio_env import PortfolioEnv
    from market_metarl.envs.spec import EnvSpec
    from market_metarl.envs.trading_env import TradingEnv
    from market_metarl.envs.vector_env import BatchedTradingEnv
    from market_metarl.types import CostSpec, TaskSpec

_LAZY = {
    "EnvSpec": "market_metarl.envs.spec",
    "TradingEnv": "market_metarl.envs.trading_env",
    "PortfolioEnv": "market_metarl.envs.portfolio_env",
    "BatchedTradingEnv": "market_metarl.envs.vector_env",
    "FusedTradingEnv": "market_metarl.envs.fused",
    "TaskMarket": "market_metarl.envs.market",
    "CostModel": "market_metarl.envs.costs",
    "MarketSimulator": "market_metarl.envs.simulator",
    "ObservationBuilder": "market_metarl.envs.observation",
    "ActionMap": "market_metarl.envs.actions",
}

__all__ = [
    "PORTFOLIO_ID",
    "TRADING_ID",
    "make_env",
    "make_vector_env",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_env(
    task: TaskSpec | Sequence[TaskSpec] | TaskMarket,
    env_spec: EnvSpec | None = None,
    costs: CostSpec | None = None,
) -> TradingEnv | PortfolioEnv:
    """A fresh env for a task.

    :class:`TradingEnv` for one TaskSpec (or a one-asset :class:`TaskMarket`),
    :class:`PortfolioEnv` for several TaskSpecs (one per asset) or a multi-asset market.
    """
    from market_metarl.envs.market import TaskMarket
    from market_metarl.envs.portfolio_env import PortfolioEnv
    from market_metarl.envs.trading_env import TradingEnv
    from market_metarl.types import TaskSpec

    if isinstance(task, TaskSpec):
        return TradingEnv(task, env_spec, costs)
    if isinstance(task, TaskMarket):
        cls = TradingEnv if task.n_assets == 1 else PortfolioEnv
        return cls(task, env_spec, costs)
    return PortfolioEnv(list(task), env_spec, costs)


def make_vector_env(
    tasks: Sequence[TaskSpec | TaskMarket],
    env_spec: EnvSpec | None = None,
    costs: CostSpec | None = None,
) -> BatchedTradingEnv:
    """A :class:`BatchedTradingEnv` stepping ``tasks`` together."""
    from market_metarl.envs.vector_env import BatchedTradingEnv

    return BatchedTradingEnv(tasks, env_spec, costs)


register_envs()
