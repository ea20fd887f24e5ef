"""market_metarl: meta-reinforcement learning that adapts trading strategies to new regimes.

Importing the package registers the Gymnasium ids ``market_metarl/Trading-v0`` and
``market_metarl/Portfolio-v0`` (:mod:`market_metarl.envs.registration`), at once when Gymnasium is
loaded, else when it is first imported, and loads nothing heavier itself: no Gymnasium, numpy,
pandas or torch, so the command line starts fast. The layers (``data``, ``envs``, ``meta``,
``backtest``, ``live``) are imported where they are used.
"""

from market_metarl._gym_hook import register_when_gymnasium_loads

__version__ = "0.1.0"

register_when_gymnasium_loads()
