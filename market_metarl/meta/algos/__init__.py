"""The algorithms, one module each, with its config, its learner and its ``ALGORITHM``.

A module holds the config dataclass of its ``[train.<name>]`` table, the learner, and a
module-level ``ALGORITHM`` (:class:`market_metarl.meta.registry.Algorithm`).

The registry (:mod:`market_metarl.meta.registry`) names these modules and imports each only when
it is asked for; the trainer, the experiment and the CLI read the registry, never this package.
"""
