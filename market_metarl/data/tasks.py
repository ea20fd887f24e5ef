"""Tasks: regimes cut into frozen :class:`~market_metarl.types.TaskSpec` values, split in time.

A TaskSet is built from an ``envs/*.toml`` file (see ``envs/default.toml``) whose data-layer
sections are ``[data]``, ``[regimes]``, ``[splits]`` and ``[costs]``. The ``[data]`` symbols are
expanded into assets (:mod:`~market_metarl.data.universe`: csv globs and directories, excludes,
one name per asset, the repair policy); for each asset the bars are loaded, sliced into regimes,
and each regime is intersected with the train, val and test date segments; pieces longer than
``max_task_days`` are cut into consecutive tasks and pieces shorter than ``min_task_days`` are
dropped. So no task crosses a segment boundary, and consecutive segments must be separated by at
least ``embargo_days`` trading days (checked when the config is read, so a model trained on one
segment cannot have seen the days right before the next). Held-out symbols are in val and test only.

For evaluation honesty the HMM regimes are fitted on the train segment only (``fit_end`` = the end
of ``splits.train``); boundaries of the other methods are hindsight labels, as reports say.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from market_metarl.config import build, read_config
from market_metarl.data.features import FeatureSpec
from market_metarl.data.repair import DEFAULT_MAX_ROWS, RepairPolicy
from market_metarl.data.universe import Asset, Universe, expand_universe
from market_metarl.data.universe import source_of as source_of
from market_metarl.data.universe import symbol_name as symbol_name
from market_metarl.types import SPLITS, ConfigError, CostSpec, DataError, Regime, Split, TaskSpec


@dataclass(frozen=True)
class DataSection:
    """``[data]``: what to trade.

    Attributes:
        symbols: Meta-training symbols, bare (``SPY``, resolved with ``source``), full source specs,
            or csv globs and directories naming many files (``csv:data/us/*.us.txt``,
            ``csv:data/us/``; relative to the working directory), expanded to one asset per file
            by :func:`~market_metarl.data.universe.expand_universe`.
        heldout_symbols: Symbols that only appear in val and test tasks (same forms).
        source: Source kind for bare symbols (``bundled``, ``yfinance``, ``csv``).
        warmup_days: Bars of history a task needs before its first day (features and the
            observation window read them; they are never traded). Tasks start later if needed.
        exclude: Assets dropped after expansion, from both lists: globs on symbol names
            (``SPY``, ``XL*``) or, with a ``/``, on file paths. One that drops nothing is an error.
        repair: Bad rows of csv sources: ``refuse`` the file, or ``drop`` isolated ones
            (:mod:`~market_metarl.data.repair`); each drop is recorded in the run directory.
        repair_max_rows: Under ``drop``, the most bad rows a file may have (none adjacent).
    """

    symbols: tuple[str, ...] = ("SPY",)
    heldout_symbols: tuple[str, ...] = ()
    source: str = "bundled"
    warmup_days: int = 100
    exclude: tuple[str, ...] = ()
    repair: Literal["refuse", "drop"] = "refuse"
    repair_max_rows: int = DEFAULT_MAX_ROWS

    def __post_init__(self) -> None:
        """Reject no symbols, a symbol trained on and held out, or negative warm-up or maximum."""
        if not self.symbols:
            raise ConfigError("data.symbols is empty; list at least one symbol, e.g. ['SPY']")
        overlap = set(self.symbols) & set(self.heldout_symbols)
        if overlap:
            raise ConfigError(
                f"data.heldout_symbols {sorted(overlap)} also appear in data.symbols; "
                "a held-out symbol must not be trained on"
            )
        if self.warmup_days < 0:
            raise ConfigError(f"data.warmup_days must be >= 0, got {self.warmup_days}")
        if self.repair_max_rows < 1:
            raise ConfigError(f"data.repair_max_rows must be >= 1, got {self.repair_max_rows}")

    def universe(self) -> Universe:
        """The training and held-out assets these settings name (globs expanded, excludes applied).

        Raises:
            DataError: A glob or directory with no data file.
            ConfigError: An exclude that drops nothing, two assets with one symbol name, or a
                held-out name that is also trained on.
        """
        policy = RepairPolicy(self.repair, self.repair_max_rows)
        return expand_universe(
            self.symbols, self.heldout_symbols, self.source, self.exclude, policy
        )


@dataclass(frozen=True)
class RegimeSection:
    """``[regimes]``: how a symbol's history is cut into regimes, and regimes into tasks.

    Attributes:
        method: ``window``, ``trend-vol``, ``hmm``, ``changepoint``, or ``known`` (the true regimes
            of a ``synthetic:ar-regimes`` source).
        min_length: Fewest bars per regime.
        min_task_days: Shortest task kept after intersecting regimes with the splits.
        max_task_days: Longest task; longer regimes are cut into consecutive tasks (0: no limit).
        seed: Seed of fitted methods.
        params: Extra parameters of the method (e.g. ``{n_states = 3}``).
    """

    method: str = "hmm"
    min_length: int = 40
    min_task_days: int = 40
    max_task_days: int = 0
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject task lengths that would give one-day tasks or a maximum below the minimum."""
        if self.min_task_days < 2:
            raise ConfigError(f"regimes.min_task_days must be >= 2, got {self.min_task_days}")
        if self.max_task_days and self.max_task_days < self.min_task_days:
            raise ConfigError(
                f"regimes.max_task_days={self.max_task_days} is below "
                f"regimes.min_task_days={self.min_task_days}; raise it or use 0 for no limit"
            )


@dataclass(frozen=True)
class SplitSection:
    """``[splits]``: date segments (inclusive ``[start, end]`` ISO dates) and the embargo.

    Attributes:
        train: Meta-training segment.
        val: Validation segment (optional: ``[]`` for none).
        test: Meta-test segment.
        embargo_days: Fewest trading days between the end of one segment and the next's start.
    """

    train: tuple[str, ...] = ("1998-01-01", "2011-12-31")
    val: tuple[str, ...] = ()
    test: tuple[str, ...] = ("2014-01-01", "2021-12-31")
    embargo_days: int = 20

    def windows(self) -> dict[Split, tuple[dt.date, dt.date]]:
        """The parsed ``(start, end)`` dates of each split given (``val`` only when set).

        Raises:
            ConfigError: A split that is not ``[start, end]`` ISO dates, ends before it starts, or
                ``train`` missing.
        """
        out: dict[Split, tuple[dt.date, dt.date]] = {}
        for name in SPLITS:
            value = getattr(self, name)
            if not value:
                continue
            if len(value) != 2:
                raise ConfigError(f"splits.{name} must be [start, end], got {list(value)}")
            try:
                start, end = (dt.date.fromisoformat(v) for v in value)
            except ValueError:
                raise ConfigError(
                    f"splits.{name} dates must be YYYY-MM-DD, got {list(value)}"
                ) from None
            if end < start:
                raise ConfigError(f"splits.{name} ends ({end}) before it starts ({start})")
            out[name] = (start, end)
        if "train" not in out:
            raise ConfigError("splits.train is required, e.g. train = ['1998-01-01', '2011-12-31']")
        return out

    def __post_init__(self) -> None:
        """Parse the windows and reject any two splits closer than ``embargo_days`` trading days."""
        if self.embargo_days < 0:
            raise ConfigError(f"splits.embargo_days must be >= 0, got {self.embargo_days}")
        spans = sorted(self.windows().items(), key=lambda kv: kv[1][0])
        for (a, (_, a_end)), (b, (b_start, _)) in itertools.pairwise(spans):
            gap = int(np.busday_count(a_end + dt.timedelta(days=1), b_start))
            if gap < self.embargo_days:
                raise ConfigError(
                    f"splits.{a} ends {a_end} and splits.{b} starts {b_start}: {gap} trading "
                    f"day(s) apart, fewer than splits.embargo_days={self.embargo_days}; move them apart"
                )


@dataclass(frozen=True)
class TaskSet:
    """Tasks of every split, in a stable order, plus the settings they came from."""

    tasks: tuple[TaskSpec, ...]
    data: DataSection
    regimes: RegimeSection
    splits: SplitSection
    costs: CostSpec

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TaskSet:
        """The task set an ``envs/*.toml`` file describes, with tables overridden.

        Args:
            path: The config file.
            **overrides: Tables merged over the file's (see
                :func:`~market_metarl.config.read_config`), e.g.
                ``data={"symbols": ["SPY"], "heldout_symbols": []}``.

        Raises:
            ConfigError: A bad config or override.
            DataError: The data cannot be read, or give no training task under the splits.
        """
        return taskset_from_config(read_config(path, overrides))

    def split(self, name: Split) -> list[TaskSpec]:
        """The tasks of split ``name`` (``train``/``val``/``test``), in the set's order."""
        return [t for t in self.tasks if t.split == name]

    def __iter__(self) -> Iterator[TaskSpec]:
        """Every task, all splits, in the set's order."""
        return iter(self.tasks)

    def __len__(self) -> int:
        """Number of tasks over all splits."""
        return len(self.tasks)

    def to_frame(self) -> pd.DataFrame:
        """One row per task: ``symbol, split, start, end, label, source`` (dates as ISO strings)."""
        rows = [
            {
                "symbol": t.symbol,
                "split": t.split,
                "start": t.start.isoformat(),
                "end": t.end.isoformat(),
                "label": t.label,
                "source": t.source,
            }
            for t in self.tasks
        ]
        return pd.DataFrame(rows, columns=["symbol", "split", "start", "end", "label", "source"])


def load_taskset(path: str | Path) -> TaskSet:
    """Build the TaskSet an ``envs/*.toml`` file describes."""
    return taskset_from_config(read_config(path))


def check_warmup_days(data: DataSection, features: FeatureSpec, window: int) -> None:
    """Refuse a ``data.warmup_days`` shorter than the features' warm-up plus the window.

    A task's first observation reads ``window`` days of features, each defined only after
    ``features.warmup`` bars; with fewer bars before a task the env would silently read zeros
    where the features are still undefined. Checked with a trend feature or context on (up to 313
    bars); the classic features keep the behaviour older runs were trained with (rows read as 0).

    Raises:
        ConfigError: Naming both numbers and the value to set.
    """
    if not features.checks_warmup:
        return
    need = features.warmup + window - 1
    if data.warmup_days < need:
        raise ConfigError(
            f"data.warmup_days = {data.warmup_days} is too short: the [features] need "
            f"{features.warmup} bars of history and env.window = {window} adds {window - 1}; "
            f"set warmup_days >= {need} in [data] (or drop the long features)"
        )


def taskset_from_config(cfg: dict[str, Any], recorded: Sequence[TaskSpec] | None = None) -> TaskSet:
    """Build a TaskSet from an already parsed config (the data-layer sections).

    With ``recorded`` (the tasks a trained run recorded), the set holds them and reads no data.
    """
    data = build(DataSection, cfg.get("data"), "data")
    regimes = build(RegimeSection, cfg.get("regimes"), "regimes")
    splits = build(SplitSection, cfg.get("splits"), "splits")
    costs = build(CostSpec, cfg.get("costs"), "costs")
    if recorded is not None:
        return TaskSet(tuple(recorded), data, regimes, splits, costs)
    universe = data.universe()
    tasks: list[TaskSpec] = []
    for asset in universe.train:
        tasks += _symbol_tasks(asset, False, data, regimes, splits, costs)
    for asset in universe.heldout:
        tasks += _symbol_tasks(asset, True, data, regimes, splits, costs)
    if not any(t.split == "train" for t in tasks):
        raise DataError(
            "no training tasks: no regime of the training symbols falls inside splits.train "
            f"{list(splits.train)} with at least {regimes.min_task_days} days; check the dates"
        )
    _check_splits_have_tasks(tasks, splits, regimes)
    return TaskSet(tuple(tasks), data, regimes, splits, costs)


def _check_splits_have_tasks(
    tasks: list[TaskSpec], splits: SplitSection, regimes: RegimeSection
) -> None:
    """Refuse a configured ``val``/``test`` window that yields no task.

    Such a window lies in the future, after the data ends, or holds no regime long enough;
    training and scoring on no task would say nothing.
    """
    for name, (start, end) in splits.windows().items():
        if name != "train" and not any(t.split == name for t in tasks):
            raise DataError(
                f"no {name} tasks: no regime of the symbols falls inside splits.{name} "
                f"[{start}, {end}] with at least {regimes.min_task_days} days (a window in the "
                f"future or after the data ends has none); move splits.{name} inside the data's "
                "dates or remove it"
            )


def _symbol_regimes(
    bars: pd.DataFrame, source: str, symbol: str, regimes: RegimeSection, train_end: dt.date
) -> list[tuple[Regime, tuple[tuple[str, float], ...]]]:
    if regimes.method == "known":
        return _known_regimes(source, symbol)
    from market_metarl.data.regimes import slice_regimes

    params = dict(regimes.params)
    enough_history = int(bars.index.searchsorted(pd.Timestamp(train_end), side="right")) >= 252
    if regimes.method == "hmm" and enough_history:
        # Fit on the training period only; a symbol listed later (e.g. a held-out one) has no
        # training-period history, so its regimes are fitted on its own history (hindsight
        # labels, like the regime protocol's boundaries).
        params.setdefault("fit_end", train_end.isoformat())
    found = slice_regimes(
        bars, regimes.method, symbol, min_length=regimes.min_length, seed=regimes.seed, **params
    )
    return [(r, ()) for r in found]


def _known_regimes(source: str, symbol: str) -> list[tuple[Regime, tuple[tuple[str, float], ...]]]:
    from market_metarl.data import synthetic
    from market_metarl.data.sources import parse_source

    spec = parse_source(source)
    if spec.kind != "synthetic" or spec.target != "ar-regimes":
        raise ConfigError(
            f"regimes.method 'known' needs a synthetic:ar-regimes source, got {source!r}; "
            "use window, trend-vol, hmm or changepoint for market data"
        )
    params = synthetic.ARRegimeParams(
        n_tasks=int(spec.option("tasks", "40") or 40), days=int(spec.option("days", "90") or 90)
    )
    _, found = synthetic.ar_regimes(int(spec.option("seed", "0") or 0), params)
    return [
        (
            Regime(symbol, pd.Timestamp(r.start), pd.Timestamp(r.end), r.label, "known"),
            r.params(),
        )
        for r in found
    ]


def _symbol_tasks(
    asset: Asset,
    heldout: bool,
    data: DataSection,
    regimes: RegimeSection,
    splits: SplitSection,
    costs: CostSpec,
) -> list[TaskSpec]:
    from market_metarl.data.sources import load_bars

    source, name = asset.source, asset.name
    bars = load_bars(source)
    windows = splits.windows()
    found = _symbol_regimes(bars, source, name, regimes, windows["train"][1])
    index = bars.index
    earliest = index[min(data.warmup_days, len(index) - 1)]
    tasks = []
    for split, (seg_start, seg_end) in windows.items():
        if heldout and split == "train":
            continue
        for regime, params in found:
            start = max(regime.start, pd.Timestamp(seg_start), earliest)
            end = min(regime.end, pd.Timestamp(seg_end))
            days = index[(index >= start) & (index <= end)]
            for chunk in _chunks(days, regimes.min_task_days, regimes.max_task_days):
                tasks.append(
                    TaskSpec(
                        source=source,
                        symbol=name,
                        start=chunk[0].date(),
                        end=chunk[-1].date(),
                        label=regime.label,
                        split=split,
                        costs=costs,
                        warmup_days=data.warmup_days,
                        params=params,
                    )
                )
    return tasks


def _chunks(days: pd.DatetimeIndex, min_days: int, max_days: int) -> list[pd.DatetimeIndex]:
    if len(days) < min_days:
        return []
    if not max_days or len(days) <= max_days:
        return [days]
    n = int(np.ceil(len(days) / max_days))
    bounds = np.linspace(0, len(days), n + 1).round().astype(int)
    return [days[a:b] for a, b in itertools.pairwise(bounds) if b - a >= min_days]
