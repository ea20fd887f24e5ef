"""The Gymnasium env of a portfolio: N assets plus cash, continuous target weights."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.envs.make import PORTFOLIO_TASK_KEYS, fold_kwargs, portfolio_tasks
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.registration import PORTFOLIO_ID
from market_metarl.envs.render import check_render_mode
from market_metarl.envs.simulator import MarketSimulator
from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import DEFAULT_TRADING_TASK, TradingEnv
from market_metarl.types import CostSpec, TaskSpec

DEFAULT_PORTFOLIO_SYMBOLS: tuple[str, ...] = ("SPY", "IWM", "EEM")
"""Bundled symbols of ``market_metarl/Portfolio-v0`` when no tasks are given."""

PORTFOLIO_SPEC = EnvSpec(action="continuous")
"""Default settings of :class:`PortfolioEnv` (continuous actions)."""


class PortfolioEnv(TradingEnv):
    """Hold target weights over N assets plus cash, rebalanced daily at the open.

    ## Description

    As :class:`TradingEnv` (same timing, simulator, cost model, rewards and episode end), over N
    assets aligned on their common dates. Weights not invested are cash.

    ## Observation Space

    ``Box(-inf, inf, (N [+ 1] + W*N*F,), float32)``: the N weights held at the close, then (with
    ``include_time``) the fraction of the task elapsed, then each day's features of every asset,
    ``reshape(W, N, F)``, oldest day first.

    ## Action Space

    ``Box(-max_leverage, max_leverage, (N,), float32)`` (from 0 with ``long_only``): target
    weights, clipped to the box, then scaled down together when the gross exposure
    ``sum_i |w_i|`` exceeds ``max_leverage`` (no softmax; the remainder is cash).

    ## Rewards

    As :class:`TradingEnv`, on the equity of the whole book.

    ## Episode End

    As :class:`TradingEnv`. ``info["position"]`` is the ``(N,)`` array of weights at the close.

    ## Rendering

    As :class:`TradingEnv`: ``"ansi"`` lists every asset's close and weight on one line;
    ``"rgb_array"`` charts each asset's close relative to its close on the episode's first day,
    the N weights, and the equity of the book.

    ## Arguments

    ``tasks``: one :class:`TaskSpec` per asset, all over the same dates (costs from the first), or
    a prepared :class:`TaskMarket`; ``env_spec``: must have ``action="continuous"`` (the default
    here); ``costs``: overrides the tasks' costs; ``render_mode``: None, ``"ansi"`` or
    ``"rgb_array"``. Use :meth:`from_bars` with ``{symbol: frame}``. ``gym.make`` also takes plain
    keywords (``symbols=["SPY", "QQQ"], window=10``; see :func:`default_portfolio_env`).
    """

    def __init__(
        self,
        tasks: Sequence[TaskSpec] | TaskSpec | TaskMarket,
        env_spec: EnvSpec | None = None,
        costs: CostSpec | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Load the tasks' bars into one :class:`TaskMarket` (dates inner-joined) and set up the book."""
        self.render_mode = check_render_mode(render_mode)
        spec = env_spec or PORTFOLIO_SPEC
        if isinstance(tasks, TaskMarket):
            self.task = None
            market = tasks
            cost_spec = costs or CostSpec()
        else:
            task_list = [tasks] if isinstance(tasks, TaskSpec) else list(tasks)
            self.task = task_list[0] if task_list else None
            market = TaskMarket.from_tasks(task_list, spec.features, spec.window)
            cost_spec = costs or task_list[0].costs
        self.tasks = None if isinstance(tasks, TaskMarket) else tasks
        self._setup(market, spec, cost_spec)

    @classmethod
    def from_bars(
        cls,
        bars: pd.DataFrame | Mapping[str, pd.DataFrame],
        env_spec: EnvSpec | None = None,
        costs: CostSpec | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        render_mode: str | None = None,
    ) -> PortfolioEnv:
        """A portfolio env over ``{symbol: bars}`` (inner-joined on dates); see TradingEnv."""
        spec = env_spec or PORTFOLIO_SPEC
        market = TaskMarket.from_bars(bars, spec.features, spec.window, start=start, end=end)
        return cls(market, spec, costs, render_mode)

    def _make_simulator(self) -> None:
        m = self.market
        self.book = MarketSimulator(
            m.opens[None],
            m.closes[None],
            self.cost_model,
            self.env_spec.initial_cash,
            m.inv_adv[None],
        )
        self.sim = _BookView(self.book)  # type: ignore[assignment]
        self._to_weight = self.actions.to_weight

    def _zero_position(self) -> Any:
        return np.zeros(self.market.n_assets)


class _BookView:
    """The single-book face of a one-row :class:`MarketSimulator`, shaped like ScalarSimulator."""

    def __init__(self, book: MarketSimulator) -> None:
        self.book = book

    def reset(self, start: int) -> None:
        self.book.reset(start)

    def step(self, target: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        """Trade to ``target`` ``(N,)``: ``(growth, cost, turnover, weights at the close)``."""
        step = self.book.step(target[None])
        return float(step.growth[0]), float(step.cost[0]), float(step.turnover[0]), step.weights[0]

    @property
    def equity(self) -> float:
        return float(self.book.equity[0])


def default_portfolio_env(
    tasks: Sequence[TaskSpec] | None = None,
    env_spec: EnvSpec | None = None,
    costs: CostSpec | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> PortfolioEnv:
    """Entry point of ``market_metarl/Portfolio-v0``: bundled SPY, IWM, EEM over 2010-2012.

    Besides the records, takes plain keywords (:mod:`market_metarl.envs.make`): ``sources`` (a
    list of source specs) or ``symbols`` (bundled symbols), ``start`` and ``end`` (default
    2010-01-01 and 2012-12-31), and any field of :class:`EnvSpec` (changing
    :data:`PORTFOLIO_SPEC`) or :class:`CostSpec` by its name; e.g.
    ``gym.make("market_metarl/Portfolio-v0", symbols=["SPY", "QQQ"], window=10)``.

    Raises:
        ConfigError: An unknown keyword, a plain keyword given with its record (``window=`` with
            ``env_spec=``), or a bad value.
    """
    records = {"tasks": tasks, "env_spec": env_spec, "costs": costs}
    base_costs = _first_task(tasks).costs if tasks else CostSpec()
    args = fold_kwargs(
        PORTFOLIO_ID, kwargs, records, PORTFOLIO_TASK_KEYS, PORTFOLIO_SPEC, base_costs
    )
    if tasks is None:
        default = [
            dataclasses.replace(DEFAULT_TRADING_TASK, source=f"bundled:{sym}", symbol=sym)
            for sym in DEFAULT_PORTFOLIO_SYMBOLS
        ]
        tasks = portfolio_tasks(args.task_kwargs, default)
    return PortfolioEnv(tasks, args.env_spec, args.costs, render_mode)


def _first_task(tasks: Sequence[TaskSpec] | TaskSpec) -> TaskSpec:
    return tasks if isinstance(tasks, TaskSpec) else tasks[0]


# gym.make reads the render modes off the entry point (so render_mode="human" gets its wrapper)
default_portfolio_env.metadata = PortfolioEnv.metadata  # type: ignore[attr-defined]
