"""The closed registry of meta-learning algorithms: one name, one module, one :class:`Algorithm`.

The CLI, the experiment config and the trainer all read this registry; none keeps its own list.
It imports no torch: :func:`algorithm_names` answers ``--help`` and argument parsing fast, and
:func:`get_algorithm` imports an algorithm's module (``market_metarl.meta.algos.<name>``) only
when it is asked for. The modules named here are fixed in this file (never taken from user input),
so this is a lazy import, not import-by-string.

Adding an algorithm: write ``market_metarl/meta/algos/<name>.py`` with a module-level
``ALGORITHM = Algorithm(...)`` and add one line to :data:`BUILTIN`. Code outside the package (a
plug-in, a test) calls :func:`register` with an :class:`Algorithm` instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from market_metarl.types import ConfigError

BUILTIN: dict[str, str] = {
    "maml": "market_metarl.meta.algos.maml",
    "rl2": "market_metarl.meta.algos.rl2",
    "rl2_ppo": "market_metarl.meta.algos.rl2_ppo",
    "pooled": "market_metarl.meta.algos.pooled",
    "model_based": "market_metarl.meta.algos.model_based",
    "pearl": "market_metarl.meta.algos.pearl",
}
"""Built-in algorithms: name -> the module defining its ``ALGORITHM``."""


@dataclass(frozen=True)
class Algorithm:
    """What the trainer needs to know of one algorithm.

    Attributes:
        name: The name used on the command line (``--algo``) and as the ``[train.<name>]`` table.
        config: Frozen dataclass of the algorithm's own settings, read from ``[train.<name>]``;
            every field has a default and a docstring line.
        build: ``build(ctx) -> Learner``: a fresh learner (a
            :class:`~market_metarl.meta.contracts.Learner`) for a
            :class:`~market_metarl.meta.experiment.BuildContext` (experiment, observation shapes,
            seed, optional observations to fit normalisers on, backend). Typed loosely here so
            the registry imports nothing of the package (it is read before torch is loaded).
        summary: One line for ``--help`` and the README's table.
        with_pooled: The trainer also trains the pooled twin (the same network, no adaptation)
            beside it, for the backtest's ``pooled``, ``finetune`` and ``scratch`` strategies.
    """

    name: str
    config: type[Any]
    build: Callable[[Any], Any]
    summary: str = ""
    with_pooled: bool = True


_EXTRA: dict[str, Algorithm] = {}


def algorithm_names() -> tuple[str, ...]:
    """Every registered algorithm's name, built-ins first (no import of any algorithm)."""
    return (*BUILTIN, *(n for n in _EXTRA if n not in BUILTIN))


def register(algorithm: Algorithm) -> None:
    """Add (or replace) an algorithm defined outside the package, e.g. a plug-in or a test's.

    Raises:
        ConfigError: ``algorithm.name`` is a built-in's name.
    """
    if algorithm.name in BUILTIN:
        raise ConfigError(f"{algorithm.name!r} is a built-in algorithm; register another name")
    _EXTRA[algorithm.name] = algorithm


def unregister(name: str) -> None:
    """Remove an algorithm added with :func:`register` (a no-op for unknown names)."""
    _EXTRA.pop(name, None)


def check_name(name: str) -> str:
    """``name`` if it is registered.

    Raises:
        ConfigError: Unknown name; the message lists the valid ones.
    """
    if name not in BUILTIN and name not in _EXTRA:
        raise ConfigError(f"unknown algorithm {name!r}; valid: {', '.join(algorithm_names())}")
    return name


def get_algorithm(name: str) -> Algorithm:
    """The :class:`Algorithm` registered as ``name`` (its module imported on first use).

    Raises:
        ConfigError: Unknown name; the message lists the valid ones.
    """
    check_name(name)
    if name in _EXTRA:
        return _EXTRA[name]
    algorithm = importlib.import_module(BUILTIN[name]).ALGORITHM
    assert isinstance(algorithm, Algorithm) and algorithm.name == name, BUILTIN[name]
    return algorithm
