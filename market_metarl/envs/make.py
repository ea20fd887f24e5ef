"""Plain keyword arguments of ``gym.make`` for the registered ids, turned into the env's records.

``gym.make("market_metarl/Trading-v0", symbol="QQQ", window=10, fee_bps=5)`` is the same env as
``gym.make(..., task=TaskSpec(source="bundled:QQQ", symbol="QQQ", ...), env_spec=EnvSpec(window=10),
costs=CostSpec(fee_bps=5))``. Each keyword belongs to one group:

- the task: ``source`` (a source spec, see :mod:`market_metarl.data.sources`) or ``symbol``
  (shorthand for ``bundled:SYMBOL``), ``start``, ``end`` (``datetime.date`` or ISO strings);
  the portfolio takes ``sources`` or ``symbols`` (lists) instead;
- every field of :class:`~market_metarl.envs.spec.EnvSpec` (``window``, ``action``, ...);
- every field of :class:`~market_metarl.types.CostSpec` (``fee_bps``, ...).

The two dataclass groups are built by :func:`market_metarl.config.build`, so each value is checked
as a TOML value would be. A keyword of a group whose record is also given (``env_spec=`` and
``window=``), or a keyword of no group, is a :class:`ConfigError` that names it and lists the valid
ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from market_metarl.config import build, to_table
from market_metarl.data.universe import source_of, symbol_name
from market_metarl.envs.spec import EnvSpec
from market_metarl.types import ConfigError, CostSpec, TaskSpec

ENV_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EnvSpec))
"""Plain keywords that set a field of :class:`EnvSpec`."""

COST_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CostSpec))
"""Plain keywords that set a field of :class:`CostSpec`."""

TRADING_TASK_KEYS: tuple[str, ...] = ("source", "symbol", "start", "end")
"""Plain keywords naming the task of ``market_metarl/Trading-v0``."""

PORTFOLIO_TASK_KEYS: tuple[str, ...] = ("sources", "symbols", "start", "end")
"""Plain keywords naming the tasks of ``market_metarl/Portfolio-v0``."""


@dataclass(frozen=True)
class MakeArgs:
    """The records an entry point passes to its env, after the plain keywords are folded in.

    Attributes:
        task_kwargs: The task keywords given (``{}``: use the record or the default task).
        env_spec: The env settings (None: the env's default).
        costs: The costs (None: the task's).
    """

    task_kwargs: dict[str, Any]
    env_spec: EnvSpec | None
    costs: CostSpec | None


def fold_kwargs(
    env_id: str,
    kwargs: Mapping[str, Any],
    records: Mapping[str, Any],
    task_keys: tuple[str, ...],
    base_spec: EnvSpec,
    base_costs: CostSpec,
) -> MakeArgs:
    """Fold the plain keywords of ``gym.make(env_id, ...)`` into its records.

    Args:
        env_id: The registered id (for error messages).
        kwargs: The plain keywords given.
        records: The record arguments by name, in this order: the task(s) (``task``/``tasks``),
            the env settings (``env_spec``) and the costs (``costs``); None when not given.
        task_keys: The plain keywords naming the task(s).
        base_spec: The env settings plain env keywords change (the env's default).
        base_costs: The costs plain cost keywords change (the given task's, else the default).

    Raises:
        ConfigError: An unknown keyword, one given with the record it belongs to, or a bad value.
    """
    task_name, spec_name, costs_name = records
    groups = {task_name: task_keys, spec_name: ENV_KEYS, costs_name: COST_KEYS}
    valid = [*records, "render_mode", *task_keys, *ENV_KEYS, *COST_KEYS]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"gym.make({env_id!r}): unknown keyword argument(s) {', '.join(unknown)}; "
            f"valid: {', '.join(valid)}"
        )
    for record, keys in groups.items():
        clash = [k for k in keys if k in kwargs]
        if clash and records[record] is not None:
            raise ConfigError(
                f"gym.make({env_id!r}): {', '.join(clash)} and {record}= both set the {record}; "
                f"give {record}= or the plain keyword(s) {', '.join(keys)}, not both"
            )
    env_kwargs = {k: kwargs[k] for k in ENV_KEYS if k in kwargs}
    cost_kwargs = {k: kwargs[k] for k in COST_KEYS if k in kwargs}
    spec = records[spec_name]
    if env_kwargs:
        spec = build(EnvSpec, to_table(base_spec) | env_kwargs, "env")
    costs = records[costs_name]
    if cost_kwargs:
        costs = build(CostSpec, to_table(base_costs) | cost_kwargs, "costs")
    return MakeArgs({k: kwargs[k] for k in task_keys if k in kwargs}, spec, costs)


def trading_task(values: Mapping[str, Any], default: TaskSpec) -> TaskSpec:
    """``default`` with the task keywords ``source``/``symbol``, ``start``, ``end`` applied."""
    if "source" in values and "symbol" in values:
        raise ConfigError(
            "give source= (a source spec such as 'bundled:QQQ' or 'csv:path/to/file.csv') or "
            "symbol= (shorthand for bundled:SYMBOL), not both; name a csv asset with "
            "'csv:FILE?name=NAME'"
        )
    start, end = _window(values, default)
    task = dataclasses.replace(default, start=start, end=end)
    if "source" in values:
        source = _text("source", values["source"])
        return dataclasses.replace(task, source=source, symbol=symbol_name(source))
    if "symbol" in values:
        symbol = _text("symbol", values["symbol"])
        return dataclasses.replace(
            task, source=source_of(symbol, "bundled"), symbol=symbol_name(symbol)
        )
    return task


def portfolio_tasks(values: Mapping[str, Any], default: list[TaskSpec]) -> list[TaskSpec]:
    """``default`` with the task keywords ``sources``/``symbols``, ``start``, ``end`` applied."""
    if "sources" in values and "symbols" in values:
        raise ConfigError(
            "give sources= (source specs such as ['bundled:SPY', 'csv:path/to/file.csv']) or "
            "symbols= (bundled symbols such as ['SPY', 'IWM']), not both"
        )
    start, end = _window(values, default[0])
    if "sources" in values:
        single = [{"source": s} for s in _texts("sources", values["sources"])]
    elif "symbols" in values:
        single = [{"symbol": s} for s in _texts("symbols", values["symbols"])]
    else:
        return [dataclasses.replace(task, start=start, end=end) for task in default]
    return [trading_task(one | {"start": start, "end": end}, default[0]) for one in single]


def _window(values: Mapping[str, Any], default: TaskSpec) -> tuple[dt.date, dt.date]:
    """The ``start`` and ``end`` given (ISO strings parsed), else those of ``default``."""
    start = _date("start", values["start"]) if "start" in values else default.start
    end = _date("end", values["end"]) if "end" in values else default.end
    if end < start:
        raise ConfigError(f"end={end} is before start={start}; swap them")
    return start, end


def _date(name: str, value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be a date or a YYYY-MM-DD string, got {value!r}")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def _texts(name: str, value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{name} must be a non-empty list of strings, got {value!r}")
    return [_text(name, v) for v in value]
