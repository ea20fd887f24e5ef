"""market_metarl: meta-reinforcement learning that adapts trading strategies to new regimes."""

__version__ = "0.1.0"
