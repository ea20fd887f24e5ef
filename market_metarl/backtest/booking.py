"""The per-piece work of a backtest: one strategy and seed on one market, booked twice.

A piece makes the strategy's agent (:mod:`~market_metarl.backtest.strategies`), computes its
target weights through the protocol (:func:`~market_metarl.backtest.markets.schedule`), and books
them both in backtrader (:mod:`~market_metarl.backtest.bridge`) and with the env simulator
(:mod:`~market_metarl.backtest.simulate`). Pieces are independent, so any backend can run them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.backtest.markets import (
    FrozenAgent,
    Market,
    Protocol,
    earning_days,
    schedule,
)
from market_metarl.backtest.results import BacktestBook
from market_metarl.backtest.settings import BacktestSettings
from market_metarl.backtest.simulate import inv_adv_of, reconcile, simulate
from market_metarl.backtest.strategies import UNDER_TEST, make_agent_with_info
from market_metarl.envs.costs import CostModel
from market_metarl.meta.run import TrainedRun


def label_of(strategy: str, seed: int) -> str:
    """The label of a strategy's book: the name for seed 0, else ``name/seedN``."""
    return strategy if seed == 0 else f"{strategy}/seed{seed}"


def task_days(market: Market, earn: pd.DatetimeIndex, span_stop: int) -> list[pd.DatetimeIndex]:
    """Active earning days of each segment: its decisions, plus the exit day after it."""
    in_seg = np.zeros(market.view.days + 1, dtype=bool)
    for seg in market.segments:
        in_seg[seg.adapt_row : seg.stop_row] = True
    out = []
    for seg in market.segments:
        stop = seg.stop_row
        if stop < span_stop and not in_seg[stop]:
            stop += 1  # the flat decision after the task closes the book
        out.append(earn[seg.adapt_row : stop])
    return out


def book(
    label: str,
    strategy: str,
    seed: int,
    market: Market,
    weights: np.ndarray,
    model: CostModel,
    cash: float,
) -> BacktestBook:
    """Book a schedule of target weights in backtrader and with the env simulator."""
    from market_metarl.backtest.bridge import run_backtrader

    view = market.view
    earn = earning_days(view, market.bars)
    span_stop = min(market.stop_row + 1, view.days)  # one flat decision closes the last task
    rows = slice(market.first_row, span_stop)
    targets = pd.Series(weights[rows], index=view.dates[rows])
    adv = inv_adv_of(market.bars) if model.impact_coef else None
    bt_run = run_backtrader(market.bars, targets, model, cash, adv)
    env = simulate(market.bars, targets, model, cash, adv)
    return BacktestBook(
        label,
        strategy,
        seed,
        market,
        targets,
        bt_run.equity,
        env.equity,
        env.traded,
        task_days(market, earn, span_stop),
        bt_run.orders,
        bt_run.rejected,
    )


def native_check(
    account: BacktestBook, model: CostModel, cash: float
) -> tuple[dict[str, Any], pd.Series]:
    """Book ``account``'s targets with backtrader's own ``order_target_percent``, against the env."""
    from market_metarl.backtest.bridge import run_backtrader

    native = run_backtrader(account.market.bars, account.targets, model, cash, sizing="close")
    info = {
        "account": f"{account.label} {account.market.symbol}",
        "max_rel_diff": reconcile(native.equity, account.env_equity),
        "rejected_orders": native.rejected,
        "orders": native.orders,
    }
    return info, native.equity


@dataclass(frozen=True)
class Job:
    """What every piece of a backtest reads (shipped once to each Ray worker)."""

    run: TrainedRun
    markets: list[Market]
    protocol: Protocol
    adapt_days: int
    every: int
    model: CostModel
    cash: float
    settings: BacktestSettings = field(default_factory=BacktestSettings)
    batched: bool = True


@dataclass(frozen=True)
class Piece:
    """One strategy and seed on one market: its book and, for the strategy under test, zero-shot.

    Attributes:
        account: The book.
        zero_shot: Task returns of the same policy before adapting, on the same days (only for
            the strategy under test).
        fit: What a fitted rule was fitted on (``hmm_switch``), else None.
    """

    account: BacktestBook
    zero_shot: list[np.ndarray] | None
    fit: dict[str, Any] | None = None


def backtest_piece(job: Job, unit: tuple[str, int, int]) -> Piece:
    """The piece function of a backtest: one ``(strategy, seed, market index)``, both books."""
    strategy, seed, m = unit
    market = job.markets[m]
    agent, fit = make_agent_with_info(job.run, strategy, seed, market, job.settings)
    weights = schedule(agent, market, job.protocol, job.adapt_days, job.every, job.batched)
    account = book(label_of(strategy, seed), strategy, seed, market, weights, job.model, job.cash)
    zero_shot = None
    if strategy == UNDER_TEST:
        frozen = FrozenAgent(agent)
        pre = schedule(frozen, market, job.protocol, job.adapt_days, job.every, job.batched)
        booked = book("zero-shot", strategy, seed, market, pre, job.model, job.cash)
        zero_shot = booked.task_returns()
    return Piece(account, zero_shot, fit)
