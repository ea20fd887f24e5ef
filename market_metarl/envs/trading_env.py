"""The Gymnasium env of one task: one symbol, a target weight per day.

Composed of the pieces of this package and nothing else: :class:`TaskMarket` (arrays computed once),
the simulator (cash and shares, fills at the next open, :class:`CostModel`), the
:class:`ObservationBuilder`, the :class:`ActionMap` and a reward component.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from market_metarl.envs.actions import ActionMap
from market_metarl.envs.costs import CostModel
from market_metarl.envs.make import TRADING_TASK_KEYS, fold_kwargs, trading_task
from market_metarl.envs.market import TaskMarket
from market_metarl.envs.observation import ObservationBuilder
from market_metarl.envs.registration import TRADING_ID
from market_metarl.envs.render import (
    RENDER_FPS,
    RENDER_MODES,
    Chart,
    RenderTrace,
    check_render_mode,
    render_text,
)
from market_metarl.envs.rewards import make_reward
from market_metarl.envs.simulator import ScalarSimulator
from market_metarl.envs.spec import EnvSpec
from market_metarl.types import ConfigError, CostSpec, TaskSpec

LOG_RETURN_FLOOR = -30.0
"""Log return reported for a day that wipes out the account (equity <= 0); the episode ends."""

DEFAULT_TRADING_TASK = TaskSpec(
    source="bundled:SPY",
    symbol="SPY",
    start=dt.date(2010, 1, 1),
    end=dt.date(2012, 12, 31),
    label="default",
)
"""The task of ``market_metarl/Trading-v0`` when none is given."""


def check_task_fits(market: TaskMarket, spec: EnvSpec, costs: CostSpec) -> None:
    """Raise :class:`ConfigError` when the env settings cannot run on this task."""
    days = market.tradable_days
    if spec.window > days:
        raise ConfigError(
            f"env.window={spec.window} is longer than the task's {days} tradable days; "
            f"use a window <= {days} or a longer task"
        )
    if costs.impact_coef > 0 and not (market.volumes > 0).any(axis=0).all():
        raise ConfigError(
            f"costs.impact_coef={costs.impact_coef} needs volume, but the bars of "
            f"{', '.join(market.symbols)} have none; set costs.impact_coef = 0"
        )


class TradingEnv(gym.Env[np.ndarray, Any]):
    """Trade one symbol over one task (a date window of its history).

    ## Description

    Each day, after the close, the agent picks a target weight (fraction of equity held in the
    asset; the rest is cash). It is executed at the next day's open, costs are paid there (fee +
    slippage, minimum fee, square-root impact, borrow on shorts; :class:`CostModel`), and the book is
    marked to market at that day's close. The account keeps explicit cash and fractional shares.
    After ``reset`` the observation is as of the close of the task's first tradable day ``d0``
    (a random day in the first half of the task with ``random_start``); the last step marks the
    close of the task's last day.

    ## Observation Space

    ``Box(-inf, inf, (1 [+ 1] + W*F,), float32)``: ``obs[0]`` is the weight held at the close
    (after its drift); with ``include_time``, ``obs[1]`` is the fraction of the task elapsed; the
    rest, ``reshape(W, F)``, are the causal features of the last ``W = window`` days ending at the
    decision day, oldest first (rows before the first bar are 0). Only bars dated ``<=`` the
    decision day are read. See :mod:`market_metarl.envs.observation`.

    ## Action Space

    ``Discrete(len(levels))`` choosing a target weight in ``levels`` (``"discrete"``), or
    ``Box(-max_leverage, max_leverage, (1,), float32)`` (from 0 with ``long_only``), clipped.

    ## Rewards

    ``"log_return"``: log equity growth net of costs; ``"differential_sharpe"``: Moody & Saffell's
    differential Sharpe ratio; ``"drawdown_penalised"``: log return minus ``drawdown_penalty``
    times the increase of drawdown. See :mod:`market_metarl.envs.rewards`.

    ## Episode End

    ``terminated`` when equity falls below ``ruin_equity * initial_cash`` or the drawdown from the
    running peak exceeds ``max_drawdown`` (unless it is 1.0). ``truncated`` when the close of the
    task's last day has been marked.

    ``info`` (after reset and each step): ``date`` (of the close just marked), ``equity``,
    ``position`` (weight held at that close), ``cost`` (currency paid that day) and ``turnover``
    (traded weight that day).

    ## Rendering

    ``render_mode=None`` (the default) keeps no history and ``render()`` returns None.
    ``"ansi"``: ``render()`` returns one line of text, the state at the last close marked: date,
    close price, weight held, equity and drawdown from the running peak. ``"rgb_array"``: an
    ``(480, 640, 3) uint8`` image of the close price, the weight held and the equity (drawdown
    shaded) from the episode's first day to the last close marked, on an x axis spanning the
    task's dates. ``gym.make(..., render_mode="human")`` shows the ``"rgb_array"`` frames through
    Gymnasium's ``HumanRendering`` wrapper (needs pygame). See :mod:`market_metarl.envs.render`.

    ## Arguments

    ``task``: a :class:`TaskSpec` (bars loaded through ``data.sources.load_task_bars``) or a
    prepared :class:`TaskMarket`; ``env_spec``: :class:`EnvSpec` (default settings if None);
    ``costs``: overrides the task's :class:`CostSpec`; ``render_mode``: None, ``"ansi"`` or
    ``"rgb_array"``. Use :meth:`from_bars` for a bars frame. ``gym.make`` also takes plain
    keywords (``symbol="QQQ", window=10, fee_bps=5``; see :func:`default_trading_env`).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 - gymnasium's convention
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
    }

    def __init__(
        self,
        task: TaskSpec | TaskMarket,
        env_spec: EnvSpec | None = None,
        costs: CostSpec | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Load the task's bars into a :class:`TaskMarket` (or take a prepared one); set up the book."""
        self.render_mode = check_render_mode(render_mode)
        spec = env_spec or EnvSpec()
        if isinstance(task, TaskSpec):
            self.task: TaskSpec | None = task
            market = TaskMarket.from_tasks(task, spec.features, spec.window)
            cost_spec = costs or task.costs
        else:
            self.task = None
            market = task
            cost_spec = costs or CostSpec()
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
    ) -> TradingEnv:
        """An env over a bars frame (earlier rows serve as the observation's warm-up).

        Args:
            bars: A bars frame (``{symbol: frame}`` for :class:`PortfolioEnv`).
            env_spec: Env settings (defaults if None).
            costs: Trading costs (``CostSpec()`` if None).
            start: First tradable day (default: the first day with a full window of features).
            end: Last tradable day (default: the last bar).
            render_mode: None, ``"ansi"`` or ``"rgb_array"`` (see the class docstring).
        """
        spec = env_spec or EnvSpec()
        market = TaskMarket.from_bars(bars, spec.features, spec.window, start=start, end=end)
        return cls(market, spec, costs, render_mode)

    # -- construction -----------------------------------------------------------------------

    def _setup(self, market: TaskMarket, spec: EnvSpec, costs: CostSpec) -> None:
        check_task_fits(market, spec, costs)
        self.market, self.env_spec, self.cost_spec = market, spec, costs
        self.cost_model = CostModel.from_spec(costs)
        self.actions = ActionMap(spec, market.n_assets)
        self.observations = ObservationBuilder(
            market.features, spec.window, market.first, market.last, spec.include_time
        )
        self.action_space = self.actions.space
        self.observation_space = self.observations.space
        self.reward_fn = make_reward(spec)
        self._first, self._last = market.first, market.last
        self._table = self.observations.table()
        self._pos_slot: int | slice = 0 if market.n_assets == 1 else slice(0, market.n_assets)
        self._dates: list[dt.date] = market.dates.astype(dt.date).tolist()
        self._ruin_level = spec.ruin_equity * spec.initial_cash
        self._max_dd = spec.max_drawdown if spec.max_drawdown < 1.0 else math.inf
        self._make_simulator()
        self._t = market.first
        self._peak = spec.initial_cash
        self._drawdown = 0.0
        self._done = True
        self._trace = RenderTrace() if self.render_mode is not None else None
        self._chart: Chart | None = None

    def _make_simulator(self) -> None:
        """Set up the book and the action-to-weight function it takes.

        The book has ``reset(start)``, ``step(weight) -> (growth, cost, turnover, weight)`` and
        ``equity``.
        """
        m = self.market
        self.sim = ScalarSimulator(
            m.opens[:, 0],
            m.closes[:, 0],
            self.cost_model,
            self.env_spec.initial_cash,
            m.inv_adv[:, 0],
        )
        self._to_weight: Callable[[Any], Any] = self.actions.to_weight_scalar

    def _zero_position(self) -> Any:
        return 0.0

    # -- gymnasium API ----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode at the first tradable day (or a random day of the first half)."""
        super().reset(seed=seed)
        start = self._first
        if self.env_spec.random_start:
            start += int(self.np_random.integers(0, (self._last - self._first) // 2 + 1))
        self.sim.reset(start)
        self.reward_fn.reset()
        self._t = start
        self._peak = self.env_spec.initial_cash
        self._drawdown = 0.0
        self._done = False
        if self._trace is not None:
            self._trace.reset(start, self._zero_position(), self.env_spec.initial_cash)
        info = {
            "date": self._dates[start],
            "equity": self.env_spec.initial_cash,
            "position": self._zero_position(),
            "cost": 0.0,
            "turnover": 0.0,
        }
        return self._table[start - self._first].copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Trade to the action's target weight at the next open; mark at its close."""
        if self._done:
            raise RuntimeError("the episode is over (or never started); call reset() first")
        growth, cost, turnover, weight = self.sim.step(self._to_weight(action))
        t = self._t = self._t + 1
        equity = self.sim.equity
        log_ret = math.log(growth) if growth > 0 else LOG_RETURN_FLOOR
        prev_dd = self._drawdown
        if equity > self._peak:
            self._peak = equity
        drawdown = self._drawdown = 1.0 - equity / self._peak
        reward = self.reward_fn(log_ret, drawdown, prev_dd)
        terminated = equity < self._ruin_level or drawdown > self._max_dd
        truncated = t >= self._last
        self._done = terminated or truncated
        obs = self._table[t - self._first].copy()
        obs[self._pos_slot] = weight
        if self._trace is not None:
            self._trace.record(t, weight, equity)
        info = {
            "date": self._dates[t],
            "equity": equity,
            "position": weight,
            "cost": cost,
            "turnover": turnover,
        }
        return obs, float(reward), terminated, truncated, info

    def render(self) -> str | np.ndarray | None:
        """The state at the last close marked, as ``render_mode`` asks (None without one)."""
        if self._trace is None:
            return None
        if not self._trace.days:
            raise RuntimeError("nothing to render before the first reset(); call reset() first")
        m = self.market
        if self.render_mode == "ansi":
            return render_text(self._trace, self._dates, m.closes, m.symbols)
        if self._chart is None:
            span = (self._first, self._last)
            self._chart = Chart(self._dates, m.symbols, span, self.env_spec.max_leverage)
        return self._chart.frame(self._trace, m.closes)

    def close(self) -> None:
        """Drop the chart of ``"rgb_array"`` rendering (built again on the next render)."""
        self._chart = None


def default_trading_env(
    task: TaskSpec | None = None,
    env_spec: EnvSpec | None = None,
    costs: CostSpec | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> TradingEnv:
    """Entry point of ``market_metarl/Trading-v0``: bundled SPY 2010-2012 unless told otherwise.

    Besides the records, takes plain keywords (:mod:`market_metarl.envs.make`): ``source`` (a
    source spec such as ``"csv:path/to/file.csv"``) or ``symbol`` (``"QQQ"`` for
    ``bundled:QQQ``), ``start`` and ``end`` (default 2010-01-01 and 2012-12-31), and any field of
    :class:`EnvSpec` or :class:`CostSpec` by its name; e.g.
    ``gym.make("market_metarl/Trading-v0", symbol="QQQ", window=10, fee_bps=5)``.

    Raises:
        ConfigError: An unknown keyword, a plain keyword given with its record (``window=`` with
            ``env_spec=``), or a bad value.
    """
    records = {"task": task, "env_spec": env_spec, "costs": costs}
    base_costs = task.costs if task is not None else CostSpec()
    args = fold_kwargs(TRADING_ID, kwargs, records, TRADING_TASK_KEYS, EnvSpec(), base_costs)
    if args.task_kwargs:
        task = trading_task(args.task_kwargs, DEFAULT_TRADING_TASK)
    return TradingEnv(task or DEFAULT_TRADING_TASK, args.env_spec, args.costs, render_mode)


# gym.make reads the render modes off the entry point (so render_mode="human" gets its wrapper)
default_trading_env.metadata = TradingEnv.metadata  # type: ignore[attr-defined]
