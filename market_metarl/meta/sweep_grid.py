"""A sweep's grid: the settings it varies, parsed from ``--grid`` and applied to a config.

A grid is a list of ``(key, values)``: ``key`` is ``section.name`` (``train.hidden``) or, for an
algorithm's setting, ``train.<algo>.name`` (``train.maml.inner_lr``). Its combinations are every
choice of one value per key; each is applied to a copy of the base config
(:func:`with_settings`), which the experiment then validates as it would a config file.
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from collections.abc import Sequence
from typing import Any

from market_metarl.types import ConfigError

Grid = list[tuple[str, list[Any]]]
"""``[(key, values), ...]`` in the order given; the first key varies slowest."""


def parse_grid(texts: Sequence[str]) -> Grid:
    """``["train.hidden=16,32", "train.maml.inner_lr=0.05,0.1"]`` -> ``[(key, values), ...]``.

    A key without a section is a ``[train]`` key; an algorithm's setting is
    ``train.<algo>.<name>``. Values are TOML scalars (``16``, ``0.05``,
    ``true``, ``"x"``); a bare word that is not one is taken as a string.

    Raises:
        ConfigError: A setting that is not ``key=v1,v2``, a key of the wrong depth, a key given
            twice, or an empty value.
    """
    grid: Grid = []
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid {text!r} must look like key=v1,v2, e.g. train.hidden=16,32")
        if "." not in key:
            key = f"train.{key}"
        if key.count(".") != 1 and not (key.startswith("train.") and key.count(".") == 2):
            raise ConfigError(
                f"--grid {text!r}: the key must be section.name (train.hidden) or, for an "
                "algorithm's setting, train.<algo>.name (train.maml.inner_lr)"
            )
        if any(k == key for k, _ in grid):
            raise ConfigError(f"--grid names {key} twice; give all its values in one setting")
        values = [_scalar(v.strip()) for v in raw.split(",")]
        if any(v == "" for v in values):
            raise ConfigError(f"--grid {text!r} has an empty value")
        grid.append((key, values))
    return grid


def _scalar(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def combinations(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first setting varying slowest."""
    keys = [k for k, _ in grid]
    return [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*(v for _, v in grid))
    ]


def with_settings(cfg: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` with ``{"section.key": value}`` (or ``train.algo.key``) settings applied."""
    out = copy.deepcopy(cfg)
    for key, value in settings.items():
        *path, name = key.split(".")
        table = out
        for depth, part in enumerate(path):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"--grid {key}: [{where}] is not a table in the config")
        table[name] = value
    return out
