"""market_metarl: meta-reinforcement learning that adapts trading strategies to new regimes.

Importing the package registers the Gymnasium ids ``market_metarl/Trading-v0`` and
``market_metarl/Portfolio-v0`` (:mod:`market_metarl.envs.registration`) and nothing heavier:
no pandas, no torch, no data read. The layers (``data``, ``envs``, ``meta``, ``backtest``,
``live``) are imported where they are used.
"""

from market_metarl.envs.registration import register_envs

__version__ = "0.1.0"

register_envs()
