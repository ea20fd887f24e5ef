"""TOML configuration helpers: strict, typed, with errors that name the field. Imports no layer."""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from market_metarl.types import ConfigError

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax problems into :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; give a path like envs/default.toml")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None


def read_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse the config at ``path``, merge ``overrides`` into it and check its sections.

    Args:
        path: A TOML config (``envs/default.toml``...).
        overrides: Tables merged over the file's, key by key (``{"train": {"iterations": 2}}``
            sets one key of ``[train]`` and keeps the others; a nested table such as
            ``{"train": {"pooled": {"iterations": 2}}}`` is merged the same way; any other value
            replaces the file's).

    Raises:
        ConfigError: The file is missing or not TOML, or a section (of the file or of
            ``overrides``) is unknown.
    """
    cfg = merge_tables(read_toml(path), overrides or {})
    check_sections(cfg, str(path))
    return cfg


def merge_tables(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``overrides`` merged in: tables recursively, other values replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def build(cls: type[T], table: dict[str, Any] | None, section: str) -> T:
    """Build the frozen dataclass ``cls`` from a TOML table, strictly.

    Unknown keys raise a :class:`ConfigError` listing the valid ones; lists become tuples; values
    of the wrong type raise naming ``section.field``. The dataclass's own ``__post_init__`` checks
    ranges.
    """
    table = dict(table or {})
    hints = typing.get_type_hints(cls)
    valid = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - valid)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(section + '.' + k for k in unknown)}; "
            f"valid keys of [{section}]: {', '.join(sorted(valid))}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        kwargs[key] = _coerce(value, hints.get(key, Any), f"{section}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"[{section}]: {exc}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` asks for, or a :class:`ConfigError` naming ``where``.

    Handles what config dataclasses use: ``X | None`` and other unions (the first member that
    accepts wins), ``tuple[X, ...]`` and fixed-length ``tuple[X, Y]`` (from a TOML list, so
    ``tuple[tuple[int, int], ...]`` reads ``[[8, 24], [16, 48]]``), ``Literal[...]``, the four TOML scalars
    (an int is accepted where a float is asked for, a bool never counts as a number) and nested
    dataclasses (from a TOML table, or already built). Any other hint passes the value through
    unchanged.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if args and args[-1] is not Ellipsis:  # fixed length, e.g. a (short, long) pair
            if len(value) != len(args):
                raise ConfigError(f"{where} must be a list of {len(args)} items, got {value!r}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if isinstance(hint, type) and hint in _SCALAR_KINDS:
        return _coerce_scalar(value, hint, where)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return build(hint, value, where)
    return value


def _coerce_union(value: Any, args: tuple[Any, ...], where: str) -> Any:
    """``value`` as the first member of the union ``args`` that accepts it (None if allowed)."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, where)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if errors else f"{where}: unexpected value {value!r}")


_SCALAR_KINDS: dict[type, str] = {
    float: "a number",
    int: "an integer",
    bool: "true or false",
    str: "a string",
}
"""The TOML scalar types a config field may declare, and how an error message names each."""


def _coerce_scalar(value: Any, hint: type, where: str) -> Any:
    """Check a TOML scalar against ``hint``: bools are only bools, ints become floats for floats.

    A float must be finite: TOML spells ``inf`` and ``nan``, and neither is a cost, an amount of
    cash, a learning rate or a leverage.
    """
    if hint is bool:
        ok = isinstance(value, bool)
    elif isinstance(value, bool):
        ok = False
    elif hint is float:
        ok = isinstance(value, int | float)
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ConfigError(f"{where} must be {_SCALAR_KINDS[hint]}, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(
            f"{where} must be a finite number, got {value!r}; TOML's inf and nan are refused, "
            "write the number itself"
        )
    return float(value) if hint is float else value


def to_table(obj: Any) -> dict[str, Any]:
    """A dataclass as a TOML-ready dict (tuples become lists, dates ISO strings)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = to_table(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


KNOWN_SECTIONS: tuple[str, ...] = (
    "data",
    "regimes",
    "splits",
    "costs",
    "features",
    "env",
    "train",
    "backtest",
    "paper",
)
"""Top-level tables of an ``envs/*.toml`` file; each layer validates its own."""


def check_sections(cfg: dict[str, Any], where: str) -> None:
    """Reject unknown top-level tables of a config, listing the valid ones."""
    unknown = sorted(set(cfg) - set(KNOWN_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {', '.join(unknown)}; "
            f"valid sections: {', '.join(KNOWN_SECTIONS)}"
        )
