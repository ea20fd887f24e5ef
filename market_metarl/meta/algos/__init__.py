"""The algorithms, one module each: its config dataclass (its ``[train.<name>]`` table), its
learner and a module-level ``ALGORITHM`` (:class:`market_metarl.meta.registry.Algorithm`).

The registry (:mod:`market_metarl.meta.registry`) names these modules and imports each only when
it is asked for; the trainer, the experiment and the CLI read the registry, never this package.
"""
