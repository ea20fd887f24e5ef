"""The meta layer: meta-learning algorithms, their agents, and the protocols that adapt them.

It reads tasks and env settings from ``data`` and ``envs`` and is read by ``backtest`` and
``live``. Entry points: :mod:`market_metarl.meta.registry` (the algorithms),
:mod:`market_metarl.meta.trainer` (training into a run directory),
:mod:`market_metarl.meta.run` (a trained run's agents) and :mod:`market_metarl.meta.contracts`
(the :class:`~market_metarl.meta.contracts.Learner` and
:class:`~market_metarl.meta.contracts.Agent` protocols other layers rely on).
"""
