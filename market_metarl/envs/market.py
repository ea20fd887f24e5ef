"""The arrays of one task, computed once when an env is built (never in ``step``).

A :class:`TaskMarket` holds, for N aligned assets over T rows (warm-up rows included): dates, opens,
closes, ``1 / adv`` for the impact term, the causal feature tensor, and the index range of the
tradable days. Every env (single, portfolio, batched) is built from these, so no pandas runs in
``step``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from market_metarl.data.bars import validate_bars
from market_metarl.data.features import FeatureSpec, compute_features
from market_metarl.envs.costs import inverse_adv, trailing_adv
from market_metarl.types import ConfigError, DataError, TaskSpec


@dataclass(frozen=True, eq=False)
class TaskMarket:
    """Precomputed arrays of one task.

    Attributes:
        symbols: Asset names, N of them.
        dates: Dates ``(T,)`` as ``datetime64[D]``.
        opens: Opens ``(T, N)``.
        closes: Closes ``(T, N)``.
        volumes: Volumes ``(T, N)``.
        inv_adv: ``1 / trailing dollar volume`` ``(T, N)`` (row ``t`` uses rows ``<= t``; 0 where
            unknown).
        features: Causal features ``(T, N, F)``, float32, warm-up NaN replaced by 0.
        first: Row of the first tradable day (the decision day of the first observation).
        last: Row of the last tradable day (the last close marked).
    """

    symbols: tuple[str, ...]
    dates: np.ndarray
    opens: np.ndarray
    closes: np.ndarray
    volumes: np.ndarray
    inv_adv: np.ndarray
    features: np.ndarray
    first: int
    last: int

    @property
    def n_assets(self) -> int:
        """Number of assets traded together (N)."""
        return len(self.symbols)

    @property
    def tradable_days(self) -> int:
        """Days from the first decision to the last close, both included."""
        return self.last - self.first + 1

    def date(self, row: int) -> dt.date:
        """The calendar date of array row ``row``."""
        return self.dates[row].astype(dt.date)

    def sub(self, first: int, last: int, warmup_rows: int) -> TaskMarket:
        """The task trading rows ``first..last`` of this one, keeping ``warmup_rows`` rows before.

        Features are causal, so slicing them equals recomputing them on the sliced bars as long as
        ``warmup_rows`` covers the window and the features' own warm-up.
        """
        if not 0 <= first < last < len(self.dates):
            raise DataError(f"rows {first}..{last} are outside 0..{len(self.dates) - 1}")
        lo = max(first - warmup_rows, 0)
        rows = slice(lo, last + 1)
        return replace(
            self,
            dates=self.dates[rows],
            opens=self.opens[rows],
            closes=self.closes[rows],
            volumes=self.volumes[rows],
            inv_adv=self.inv_adv[rows],
            features=self.features[rows],
            first=first - lo,
            last=last - lo,
        )

    @classmethod
    def from_bars(
        cls,
        bars: pd.DataFrame | Mapping[str, pd.DataFrame],
        features: FeatureSpec,
        window: int = 1,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        validate: bool = True,
    ) -> TaskMarket:
        """Arrays of one task from bars (one frame, or ``{symbol: frame}`` aligned on dates).

        Args:
            bars: Bars; several frames are inner-joined on their dates.
            features: Which causal features to compute (context columns, when on, read the
                context sources with ``load_bars``).
            window: Observation window; with ``start`` None the first tradable day is the first
                row whose whole window has every feature defined.
            start: First tradable day (default: see ``window``).
            end: Last tradable day (default: the last row).
            validate: Check and clean the bars (:func:`~market_metarl.data.bars.validate_bars`);
                False only for slices of bars that ``load_bars`` already validated.

        Raises:
            DataError: When no rows fall in ``start..end`` or the frames share no dates.
        """
        clean, index = _aligned_frames(bars, validate)
        opens = np.stack([f["open"].to_numpy() for f in clean.values()], axis=1)
        closes = np.stack([f["close"].to_numpy() for f in clean.values()], axis=1)
        volumes = np.stack([f["volume"].to_numpy() for f in clean.values()], axis=1)
        feats = np.stack(
            [compute_features(f, features).to_numpy(dtype=np.float32) for f in clean.values()],
            axis=1,
        )
        feats = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)
        if features.context:
            feats = _with_context(feats, pd.DatetimeIndex(index), features)
        first, last = _tradable_rows(index, ", ".join(clean), features, window, start, end)
        return cls(
            symbols=tuple(clean),
            dates=index.to_numpy().astype("datetime64[D]"),
            opens=opens,
            closes=closes,
            volumes=volumes,
            inv_adv=inverse_adv(trailing_adv(closes, volumes)),
            features=feats,
            first=int(first),
            last=int(last),
        )

    @classmethod
    def from_tasks(
        cls,
        tasks: TaskSpec | Sequence[TaskSpec],
        features: FeatureSpec,
        window: int,
        loaded: dict[str, pd.DataFrame] | None = None,
    ) -> TaskMarket:
        """Arrays of one task (or of several same-window tasks, one per asset) from TaskSpecs.

        Reads ``window - 1 + features.warmup`` warm-up rows before ``task.start`` (fewer when the
        data starts later: the missing feature rows are zeros) with ``data.sources``, imported
        here on first use.

        Args:
            tasks: One TaskSpec, or one per asset over the same dates.
            features: Which causal features to compute.
            window: Observation window.
            loaded: Cache of bars by source spec, shared across calls (e.g. by the batched env).
        """
        from market_metarl.data.sources import load_bars, slice_with_warmup

        task_list = [tasks] if isinstance(tasks, TaskSpec) else list(tasks)
        if not task_list:
            raise ConfigError("no tasks given; a portfolio env needs at least one TaskSpec")
        t0 = task_list[0]
        for task in task_list[1:]:
            if (task.start, task.end) != (t0.start, t0.end):
                raise ConfigError(
                    f"portfolio tasks must share one date window, got {t0.name} and {task.name}"
                )
        cache = {} if loaded is None else loaded
        frames = {}
        for task in task_list:
            if task.source not in cache:
                cache[task.source] = load_bars(task.source)
            bars = cache[task.source]
            history = int(bars.index.searchsorted(pd.Timestamp(task.start)))
            warmup = min(window - 1 + features.warmup, history)
            frames[task.symbol] = slice_with_warmup(bars, task.start, task.end, warmup, task.name)
        # load_bars validated the whole series; its slices need no second pass
        return cls.from_bars(frames, features, window, start=t0.start, end=t0.end, validate=False)


def _with_context(feats: np.ndarray, index: pd.DatetimeIndex, features: FeatureSpec) -> np.ndarray:
    """``feats (T, N, F)`` with the cross-asset context columns ``(T, C)`` appended to every asset.

    The context of date ``t`` reads the context assets' bars dated ``<= t`` only
    (:mod:`market_metarl.data.context`).
    """
    from market_metarl.data.context import load_context

    ctx = load_context(index, features.context_specs, features.context_lookback)
    wide = np.broadcast_to(ctx[:, None, :], (len(index), feats.shape[1], ctx.shape[1]))
    return np.concatenate([feats, wide], axis=2)


def _aligned_frames(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame], validate: bool
) -> tuple[dict[str, pd.DataFrame], pd.Index]:
    """``{symbol: bars}`` (``asset`` for a lone frame), validated if asked, on their common dates.

    Returns:
        The frames restricted to the dates they all have, and those dates.

    Raises:
        DataError: No frames, or fewer than 2 dates shared by all of them.
    """
    frames = {"asset": bars} if isinstance(bars, pd.DataFrame) else dict(bars)
    if not frames:
        raise DataError("no bars given; pass a bars frame or {symbol: frame}")
    if validate:
        clean = {s: validate_bars(f, source=s)[0] for s, f in frames.items()}
    else:
        clean = frames
    index = None
    for frame in clean.values():
        index = frame.index if index is None else index.intersection(frame.index)
    assert index is not None
    if len(index) < 2:
        raise DataError(
            f"the bars of {', '.join(clean)} share {len(index)} date(s); give overlapping series"
        )
    return {s: f.loc[index] for s, f in clean.items()}, index


def _tradable_rows(
    index: pd.Index,
    names: str,
    features: FeatureSpec,
    window: int,
    start: dt.date | str | None,
    end: dt.date | str | None,
) -> tuple[int, int]:
    """Rows ``(first, last)`` of the first decision day and the last day marked.

    Without ``start``, the first row whose whole window has every feature defined.

    Raises:
        DataError: Fewer than 2 tradable rows (``names`` says whose bars, for the message).
    """
    first = features.warmup + window - 1 if start is None else _row(index, start, "left")
    last = len(index) - 1 if end is None else _row(index, end, "right") - 1
    if last <= first:
        if start is None:
            raise DataError(
                f"{names}: {len(index)} bars, but the features need "
                f"{features.warmup} and the window {window - 1} before the first decision day; "
                "give more bars, a start date or a shorter window"
            )
        raise DataError(
            f"{names}: fewer than 2 bars between {start} and "
            f"{end or index[-1].date()}; a task needs a decision day and a day to trade"
        )
    return first, last


def _row(index: pd.Index, when: dt.date | str, side: str) -> int:
    """First row on or after ``when`` (side ``left``), or one past the last on or before it."""
    stamp = pd.Timestamp(when)
    row = int(index.searchsorted(stamp, side=side))  # type: ignore[call-overload]
    if side == "left" and row >= len(index):
        raise DataError(f"no bars on or after {stamp.date()}; the data ends {index[-1].date()}")
    return row
