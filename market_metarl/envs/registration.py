"""The Gymnasium ids of the market_metarl envs, and the one function that registers them.

- ``market_metarl/Trading-v0``: :class:`~market_metarl.envs.trading_env.TradingEnv`, bundled SPY
  2010-01-01..2012-12-31 by default (``gym.make("market_metarl/Trading-v0", task=...,
  env_spec=...)`` overrides it, as do plain keywords such as ``symbol="QQQ", window=10``; see
  :mod:`market_metarl.envs.make`);
- ``market_metarl/Portfolio-v0``: :class:`~market_metarl.envs.portfolio_env.PortfolioEnv`,
  bundled SPY, IWM and EEM over the same dates.

The entry points are strings, so registering reads no data and imports neither pandas nor torch:
``import market_metarl`` registers both ids (then ``gym.make("market_metarl/Trading-v0")`` works),
and ``gym.make("market_metarl:market_metarl/Trading-v0")`` works without importing the package
first, since Gymnasium imports the module named before the colon. Gymnasium 1.x reads no
``gymnasium.envs`` plugin entry points (the plugin system was removed in 1.0), so this module-prefix
form is how a tool that only takes an env id reaches these envs.
"""

from __future__ import annotations

TRADING_ID = "market_metarl/Trading-v0"
"""One asset, one TaskSpec: :class:`~market_metarl.envs.trading_env.TradingEnv`."""

PORTFOLIO_ID = "market_metarl/Portfolio-v0"
"""Several assets over one window: :class:`~market_metarl.envs.portfolio_env.PortfolioEnv`."""

ENTRY_POINTS: dict[str, str] = {
    TRADING_ID: "market_metarl.envs.trading_env:default_trading_env",
    PORTFOLIO_ID: "market_metarl.envs.portfolio_env:default_portfolio_env",
}
"""Env id -> ``module:callable`` building the env (imported by Gymnasium on ``gym.make``)."""

VECTOR_ENTRY_POINTS: dict[str, str] = {
    TRADING_ID: "market_metarl.envs.vector_make:default_batched_env",
}
"""Env id -> ``module:callable`` building ``num_envs`` envs as one batched env
(``gym.make_vec(id, num_envs=8)``; Gymnasium uses it unless ``vectorization_mode`` says otherwise).
"""


def register_envs() -> None:
    """Register every id of :data:`ENTRY_POINTS` not yet in Gymnasium's registry (idempotent).

    Gymnasium is imported here, not at the top of this module, so the package can import this
    module while Gymnasium itself is being imported (:mod:`market_metarl._gym_hook`).
    """
    from gymnasium.envs.registration import register, registry

    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id not in registry:
            register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=VECTOR_ENTRY_POINTS.get(env_id),
            )
