"""TOML configuration helpers: strict, typed, with errors that name the field. Imports no layer."""

from __future__ import annotations

import dataclasses
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
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
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
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return build(hint, value, where)
    return value


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
