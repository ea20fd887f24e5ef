"""The markets a backtest trades under its two protocols, and their target-weight schedules.

- ``regime`` (research): for each held-out test task of the run's config, or each regime sliced
  from each of a user's ``--data`` sources, adapt on its first K days and trade the next H days. The regime
  boundaries are known in hindsight; reports say so.
- ``rolling`` (deployable): walk forward; every R days adapt on the last K days and trade the next
  R. Nothing is known in hindsight. This is what paper trading replays.

Everything a decision reads goes through :func:`market_metarl.meta.protocol.market_view` (the
env's causal features and observation builder), :func:`~market_metarl.meta.protocol.adapt_at`,
:func:`~market_metarl.meta.protocol.act_days` and
:func:`~market_metarl.meta.protocol.rolling_targets`, and the rolling blocks are cut by
:func:`~market_metarl.meta.protocol.rolling_blocks` (as paper trading cuts them); this module only
says which days.

A :class:`Market` is one symbol's bars and view with its :class:`Segment` s (a task, or a rolling
block): the agent adapts at the close of ``adapt_row`` and its decisions on rows
``adapt_row .. stop_row - 1`` are traded; on every other row the target is flat. One account per
symbol and strategy trades the whole schedule, so consecutive tasks share one equity curve.

``--data`` may name several sources, comma-separated (``bundled:SPY,bundled:QQQ,csv:x.csv``, as
:func:`data_sources` reads it): one market per source, in the order given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from market_metarl.data.sources import load_bars
from market_metarl.data.tasks import symbol_name
from market_metarl.meta.agents import GradientAgent
from market_metarl.meta.batched import block_targets, rolling_targets_batched
from market_metarl.meta.contracts import Agent
from market_metarl.meta.episodes import Episode
from market_metarl.meta.protocol import (
    MarketView,
    act_days,
    adapt_at,
    rolling_blocks,
    rolling_targets,
)
from market_metarl.meta.run import TrainedRun
from market_metarl.types import ConfigError, DataError

Protocol = Literal["regime", "rolling"]
PROTOCOLS: tuple[str, ...] = ("regime", "rolling")

HINDSIGHT_NOTE = (
    "Regime protocol: the regime boundaries (where each task starts and ends) are known in "
    "hindsight; within a task every decision uses only bars up to its close. The rolling "
    "protocol has no hindsight."
)


@dataclass(frozen=True)
class Segment:
    """One task or rolling block of a market: adapt at ``adapt_row``'s close, trade to ``stop_row``.

    Attributes:
        symbol: Symbol traded.
        label: Regime label (``block`` for rolling blocks).
        adapt_row: Decision row (of the view) whose close ends the K support days.
        stop_row: One past the last decision row traded.
    """

    symbol: str
    label: str
    adapt_row: int
    stop_row: int


@dataclass(frozen=True)
class Market:
    """One symbol's bars, its market view under the run's env settings, and its segments."""

    symbol: str
    bars: pd.DataFrame
    view: MarketView
    segments: tuple[Segment, ...]

    @property
    def first_row(self) -> int:
        """Adaptation row of the first segment (the first decision traded)."""
        return self.segments[0].adapt_row

    @property
    def stop_row(self) -> int:
        """One past the last decision row traded."""
        return self.segments[-1].stop_row


class FrozenAgent:
    """An agent with adaptation switched off: its zero-shot (pre-adaptation) behaviour.

    Args:
        agent: The agent whose adaptation is skipped.
    """

    def __init__(self, agent: Agent) -> None:
        """Wrap ``agent``."""
        self.inner = agent
        self.name = f"{agent.name}-zero-shot"

    def init(self) -> None:
        """Reset the wrapped agent."""
        self.inner.init()

    def adapt(self, support: Episode) -> None:
        """Ignore the support days: the agent stays as it was initialised."""
        return None

    def act(self, obs: np.ndarray, reward: float = 0.0) -> np.ndarray:
        """The wrapped agent's target weights."""
        return self.inner.act(obs, reward)

    def task_state(self) -> dict[str, np.ndarray]:
        """The wrapped agent's state (never adapted)."""
        return self.inner.task_state()


DataSpec = str | Sequence[str] | None
"""The sources a backtest trades: one spec, several (a sequence, or one comma-separated string), or
None for the run's own held-out test tasks."""


def data_sources(data: DataSpec) -> list[str] | None:
    """The source specs of ``data``, in order (None for the run's test tasks).

    Raises:
        ConfigError: No source given (an empty string or list).
        DataError: Two sources share a symbol name (their results could not be told apart).
    """
    if data is None:
        return None
    specs = [data] if isinstance(data, str) else list(data)
    sources = [p.strip() for spec in specs for p in spec.split(",") if p.strip()]
    if not sources:
        raise ConfigError(f"--data names no source ({data!r}); write e.g. bundled:SPY,bundled:QQQ")
    symbols = [symbol_name(s) for s in sources]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        raise DataError(
            f"--data: several sources are named {', '.join(twice)}; give each source its own "
            "symbol (e.g. rename a CSV file)"
        )
    return sources


def stamp(when: dt.date | str | None) -> pd.Timestamp | None:
    """A ``--start``/``--end`` date; text must be ISO ``YYYY-MM-DD`` (01/02/2020 is refused)."""
    if when is None:
        return None
    try:
        return pd.Timestamp(when if isinstance(when, dt.date) else dt.date.fromisoformat(when))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{when!r} is not a date; write YYYY-MM-DD ({exc})") from None


def _clip_bars(bars: pd.DataFrame, source: str, end: pd.Timestamp | None) -> pd.DataFrame:
    if end is not None:
        if end < bars.index[0]:
            raise DataError(
                f"--end {end.date()} is before the first bar of {source} ({bars.index[0].date()}); "
                f"choose dates within {bars.index[0].date()}..{bars.index[-1].date()}"
            )
        bars = bars.loc[bars.index <= end]
    return bars


def _view(run: TrainedRun, bars: pd.DataFrame, symbol: str, k_days: int) -> MarketView:
    env = run.env_spec
    view = run.market_view(bars, symbol)
    if view.days < k_days + 1:
        raise DataError(
            f"{symbol}: {view.days} decision day(s) after the features' warm-up "
            f"({env.features.warmup} bars) and the observation window ({env.window}); "
            f"adapting on K={k_days} days and trading one more needs {k_days + 1}; "
            "give a longer series or a smaller --adapt-days"
        )
    return view


def _check_window(start: pd.Timestamp | None, view: MarketView, symbol: str) -> None:
    if start is not None and start > view.dates[-1]:
        raise DataError(
            f"--start {start.date()} is after the last decision day of {symbol} "
            f"({view.dates[-1].date()}); choose dates within "
            f"{view.dates[0].date()}..{view.dates[-1].date()}"
        )


def rolling_markets(
    run: TrainedRun,
    data: DataSpec,
    k_days: int,
    every: int,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> list[Market]:
    """Markets of the rolling protocol: each source of ``data``, or each test symbol (test split)."""
    if every < 1:
        raise ConfigError(f"--every must be >= 1 day, got {every}")
    lo, hi = stamp(start), stamp(end)
    given = data_sources(data)
    if given is None:
        test_lo, test_hi = run.tasks.splits.windows()["test"]
        lo = lo or pd.Timestamp(test_lo)
        hi = hi or pd.Timestamp(test_hi)
        sources = list(dict.fromkeys(t.source for t in run.test_tasks()))
        if not sources:
            raise DataError("the run's config has no test tasks; pass --data SOURCE")
    else:
        sources = given
    markets = []
    for source in sources:
        symbol = symbol_name(source)
        bars = _clip_bars(load_bars(source), source, hi)
        view = _view(run, bars, symbol, k_days)
        _check_window(lo, view, symbol)
        first = k_days - 1
        if lo is not None:
            first = max(first, int(view.dates.searchsorted(lo, side="left")))
        if first >= view.days:
            raise DataError(f"{symbol}: no decision day left after {lo} to trade")
        blocks = tuple(
            Segment(symbol, "block", a, b) for a, b in rolling_blocks(first, view.days, every)
        )
        markets.append(Market(symbol, bars, view, blocks))
    return markets


def earning_days(view: MarketView, bars: pd.DataFrame) -> pd.DatetimeIndex:
    """The day each decision row earns: the bar after its close."""
    after = bars.index[bars.index > view.dates[-1]]
    return pd.DatetimeIndex([*view.dates[1:], after[0]])


def _regime_segments(
    view: MarketView,
    earn: pd.DatetimeIndex,
    symbol: str,
    spans: list[tuple[pd.Timestamp, pd.Timestamp, str]],
    k_days: int,
    horizon: int,
) -> tuple[Segment, ...]:
    """Segments of regime spans ``(first day, last day, label)``: adapt on K days, trade H."""
    out: list[Segment] = []
    for first, last, label in spans:
        r0 = int(view.dates.searchsorted(first, side="left"))
        r_end = int(earn.searchsorted(last, side="right"))  # decisions that earn days <= last
        adapt = r0 + k_days - 1
        stop = min(adapt + horizon, r_end)
        if adapt < stop and (not out or adapt >= out[-1].stop_row + 1):
            out.append(Segment(symbol, label, adapt, stop))
    return tuple(out)


def regime_spans(
    run: TrainedRun, bars: pd.DataFrame, symbol: str, lo: pd.Timestamp | None
) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """Regimes of a user's bars with the run's method (``hmm`` for a ``known``-regime run).

    Fitted on the bars themselves: hindsight boundaries, as the regime protocol says. Regimes
    longer than ``max_task_days`` are cut into consecutive tasks, like the run's own tasks.
    """
    from market_metarl.data.regimes import slice_regimes

    cfg = run.tasks.regimes
    method = cfg.method if cfg.method != "known" else "hmm"
    params = dict(cfg.params) if method == cfg.method else {}
    params.pop("fit_end", None)
    window = bars if lo is None else bars.loc[bars.index >= lo]
    found = slice_regimes(window, method, symbol, cfg.min_length, cfg.seed, **params)
    spans = []
    for r in found:
        days = window.index[(window.index >= r.start) & (window.index <= r.end)]
        n = max(1, int(np.ceil(len(days) / cfg.max_task_days))) if cfg.max_task_days else 1
        for chunk in np.array_split(np.arange(len(days)), n):
            spans.append((days[chunk[0]], days[chunk[-1]], r.label))
    return spans


def regime_markets(
    run: TrainedRun,
    data: DataSpec,
    k_days: int,
    horizon: int,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    spans: dict[str, list[tuple[pd.Timestamp, pd.Timestamp, str]]] | None = None,
) -> list[Market]:
    """Markets of the regime protocol: the run's test tasks, or regimes of ``data``.

    Args:
        run: The trained run.
        data: Source specs (see :func:`data_sources`), or None for the run's own held-out test
            tasks.
        k_days: Support days K.
        horizon: Query days H (at most; a task ending sooner is traded to its end).
        start: Only tasks starting on or after this date.
        end: Only tasks ending on or before this date (later bars are not read).
        spans: Regime spans by symbol, given instead of slicing them (tests fix them so altering
            later bars cannot move the boundaries).
    """
    lo, hi = stamp(start), stamp(end)
    given = data_sources(data)
    by_source: dict[str, list[tuple[pd.Timestamp, pd.Timestamp, str]]] = {}
    if given is None:
        for task in run.test_tasks():
            first, last = pd.Timestamp(task.start), pd.Timestamp(task.end)
            if (lo is None or first >= lo) and (hi is None or last <= hi):
                by_source.setdefault(task.source, []).append((first, last, task.label))
        if not by_source:
            raise DataError(
                "no test task of the run falls inside --start/--end; widen the dates or pass --data"
            )
    else:
        by_source = {source: [] for source in given}
    markets = []
    for source, task_spans in by_source.items():
        symbol = symbol_name(source)
        bars = _clip_bars(load_bars(source), source, hi)
        view = _view(run, bars, symbol, k_days)
        _check_window(lo, view, symbol)
        if given is not None:
            task_spans = (spans or {}).get(symbol) or regime_spans(run, bars, symbol, lo)
        segments = _regime_segments(
            view, earning_days(view, bars), symbol, task_spans, k_days, horizon
        )
        if segments:
            markets.append(Market(symbol, bars, view, segments))
    if not markets:
        raise DataError(
            f"no regime is long enough to adapt on K={k_days} days and trade one more; "
            "give a longer series or a smaller --adapt-days"
        )
    return markets


def schedule(
    agent: Agent,
    market: Market,
    protocol: Protocol,
    k_days: int,
    every: int,
    batched: bool = True,
) -> np.ndarray:
    """Target weights ``(days,)`` of every decision row of the market's view (flat off-segment).

    ``regime``: per segment, ``adapt_at`` then ``act_days`` from a flat book. ``rolling``: one
    call of ``rolling_targets`` over all blocks (each block starts from the previous one's book).
    With ``batched`` a gradient agent (or a frozen one) runs every block at once instead
    (:mod:`~market_metarl.meta.batched`: the same positions, bit for bit or to float32
    rounding); ``False`` keeps the day-by-day path for every agent.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    inner, adapt = (agent.inner, False) if isinstance(agent, FrozenAgent) else (agent, True)
    if batched and isinstance(inner, GradientAgent):
        return _batched_schedule(inner, market, protocol, k_days, every, adapt)
    view = market.view
    ep = view.episode
    out = np.zeros(view.days)
    if protocol == "rolling":
        a, b = market.first_row, market.stop_row
        out[a:b] = rolling_targets(agent, view, a, b, k_days, every)[:, 0]
        return out
    for seg in market.segments:
        adapt_at(agent, ep, seg.adapt_row, k_days)
        targets, _ = act_days(agent, ep, seg.adapt_row, seg.stop_row, np.zeros(ep.n_assets))
        out[seg.adapt_row : seg.stop_row] = targets[:, 0]
    return out


def _batched_schedule(
    agent: GradientAgent, market: Market, protocol: Protocol, k_days: int, every: int, adapt: bool
) -> np.ndarray:
    """:func:`schedule` of a gradient agent through :func:`~market_metarl.meta.batched.block_targets`."""
    ep = market.view.episode
    out = np.zeros(market.view.days)
    if protocol == "rolling":
        a, b = market.first_row, market.stop_row
        out[a:b] = rolling_targets_batched(agent, ep, a, b, k_days, every, adapt)[:, 0]
        return out
    blocks = [(seg.adapt_row, seg.stop_row) for seg in market.segments]
    weights = block_targets(agent, ep, blocks, k_days, chained=False, adapt=adapt)[:, 0]
    for (a, b), start in zip(blocks, np.cumsum([0] + [b - a for a, b in blocks]), strict=False):
        out[a:b] = weights[start : start + b - a]
    return out
