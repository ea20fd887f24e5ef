"""The backtrader bridge: the only module that imports backtrader.

One thin ``bt.Strategy`` replays a target-weight schedule that was decided beforehand by the
protocols (:mod:`market_metarl.backtest.markets`, through :mod:`market_metarl.meta.protocol`):
after the close of each decision day it sends a market order that backtrader fills at the next
open (``cheat_on_open`` and cheat-on-close off: backtrader's default market-order semantics), and
an analyzer records the account's equity at every close.

Costs come from the one :class:`~market_metarl.envs.costs.CostModel`:

- slippage: ``broker.set_slippage_perc(slippage_bps * 1e-4)``, applied to the open (``slip_open``)
  and allowed outside the bar's range (``slip_out``), so a buy fills at ``open * (1 + s)``;
- commission: :class:`CostModelCommission`, a ``bt.CommInfoBase`` that charges the cost model's
  order cost less the slippage already in the price: ``fee_bps`` on the order's notional at the
  open, topped up to ``min_fee``, plus the square-root impact when configured;
- borrow on shorts: charged daily at the open, ``borrow_daily * short weight * equity``, taken
  from cash with ``broker.add_cash`` (backtrader's own credit interest uses calendar days and the
  previous position, a different convention).

Sizing (``sizing="open"``, the default). The env's convention is a target *weight of the equity at
the open after costs*; an order for it must be sized at the open. The strategy computes that
order when it sends it, from the next bar's open (``data.open[1]``) and the current cash and
shares: exactly what a broker does with a notional or target-percent order that executes at the
open. The target itself was fixed at the previous close, from bars up to that close (the
protocols never see this module; the lookahead tests alter later bars and compare positions).
With fractional shares this reproduces the env's accounting to float precision.

``sizing="close"`` is backtrader's native ``order_target_percent``: shares are sized on the
decision day's close and filled at the next open, so the weight actually held differs from the
target by the overnight gap, and a fully invested book whose order costs more than its cash after a
gap up is rejected for margin. The runner measures that difference for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import backtrader as bt
import backtrader.plot  # imported for its side effect: it picks a GUI backend, undone below
import matplotlib
import numpy as np
import pandas as pd

from market_metarl.envs.costs import CostModel
from market_metarl.types import ConfigError

matplotlib.use("Agg", force=True)  # undo backtrader.plot's backend choice: headless plotting

Sizing = Literal["open", "close"]
BUY_GUARD = 1e-12
"""Relative trim of buy orders, so float rounding never leaves cash at -1e-11 (margin reject)."""
MIN_ORDER = 1e-10
"""Orders under this fraction of equity are not sent (float dust from the weights' drift)."""


class CostModelCommission(bt.CommInfoBase):
    """Commission of the one cost model, for stock-like fractional positions.

    Two modes:

    - an order sized at the open (``sizing="open"``) carries its commission, computed by the
      strategy with the cost model under the env's convention (see :func:`order_commission`);
      backtrader may split an order that crosses zero into a closing and an opening leg, and each
      leg is charged its share of that commission (``pending``);
    - otherwise (``sizing="close"``) the commission is the cost model's order cost of the fill's
      notional at the open, ``|size| * price / (1 +- slippage)``, less the slippage already in the
      price: the fee, the minimum-fee top-up and the impact (``inv_adv`` set per order).
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_FIXED),
        ("percabs", True),
        ("commission", 0.0),
    )

    model: CostModel = CostModel(rate=0.0)
    slippage: float = 0.0
    inv_adv: float = 0.0
    pending: tuple[float, float] | None = None

    def getsize(self, price: float, cash: float) -> float:
        """Fractional shares (backtrader's default truncates to whole shares)."""
        return float(self.p.leverage * cash / price)

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        if self.pending is not None:
            order_size, commission = self.pending
            return commission * abs(size) / order_size
        side = 1.0 + self.slippage if size > 0 else 1.0 - self.slippage
        notional = abs(size) * price / side
        return float(self.model.order_costs(notional, self.inv_adv)) - self.slippage * notional


def order_commission(
    model: CostModel,
    equity_open: float,
    pre: float,
    target: float,
    open_price: float,
    inv_adv: float = 0.0,
) -> tuple[float, float]:
    """``(shares to trade, commission)`` that take a book to ``target`` at the open, env-exact.

    The env charges ``order_costs(|target - pre| * equity_open)`` (fee and slippage on the change
    of weight times the equity before the trade) and sizes the book on the equity after costs.
    backtrader takes the slippage through the fill price, on the shares actually traded; the
    commission is the rest, so the two books agree to float precision. It differs from the fee on
    the traded notional by a second-order term (``rate * target * cost``, under 1e-8 of equity).
    """
    equity = max(equity_open, 0.0)
    trade_cost = float(model.trade_cost(abs(target - pre) * equity, inv_adv))
    borrow = float(model.borrow_cost(target, equity))
    shares = (
        target * (equity_open - trade_cost - borrow) / open_price - pre * equity_open / open_price
    )
    slippage = (model.rate - model.fee_rate) * abs(shares) * open_price
    return shares, trade_cost - slippage


class _TargetWeights(bt.Strategy):
    """Sends, after each decision day's close, the order that brings the book to its target."""

    params = (
        ("targets", None),  # dict date -> target weight
        ("inv_adv", None),  # dict date -> 1 / trailing dollar volume
        ("model", None),
        ("comm", None),
        ("sizing", "open"),
    )

    def __init__(self) -> None:
        self.orders = 0
        self.rejected = 0

    def notify_order(self, order: Any) -> None:
        if order.status in (order.Margin, order.Rejected):
            self.rejected += 1

    def next(self) -> None:
        day = self.data.datetime.date(0)
        target = self.p.targets.get(day)
        if target is None or len(self.data) >= self.data.buflen():
            return
        self.p.comm.inv_adv = self.p.inv_adv.get(day, 0.0)
        if self.p.sizing == "close":
            self._charge_borrow(target, self.broker.getvalue())
            if self.order_target_percent(target=target) is not None:
                self.orders += 1
            return
        self._rebalance_at_open(target)

    def _charge_borrow(self, target: float, equity: float) -> None:
        borrow = float(self.p.model.borrow_cost(target, equity))
        if borrow:
            self.broker.add_cash(-borrow)  # applied after the next open's fills

    def _rebalance_at_open(self, target: float) -> None:
        open_next = float(self.data.open[1])
        shares = float(self.position.size)
        equity_open = float(self.broker.getcash()) + shares * open_next
        pre = shares * open_next / equity_open
        comm: CostModelCommission = self.p.comm
        delta, commission = order_commission(
            self.p.model, equity_open, pre, target, open_next, comm.inv_adv
        )
        self._charge_borrow(target, max(equity_open, 0.0))
        if abs(delta) * open_next <= MIN_ORDER * abs(equity_open):
            return
        self.orders += 1
        if delta > 0:
            delta *= 1.0 - BUY_GUARD
        comm.pending = (abs(delta), commission)
        if delta > 0:
            self.buy(size=delta)
        else:
            self.sell(size=-delta)


class _DailyEquity(bt.Analyzer):
    """Account equity at every close (after that day's fills at the open)."""

    def start(self) -> None:
        self.rows: list[tuple[Any, float]] = []

    def next(self) -> None:
        self.rows.append((self.data.datetime.date(0), float(self.strategy.broker.getvalue())))

    def get_analysis(self) -> list[tuple[Any, float]]:
        return self.rows


@dataclass(frozen=True)
class BridgeResult:
    """What one backtrader run produced.

    Attributes:
        equity: Account equity at each close, indexed by date (first day: the initial cash).
        orders: Orders sent.
        rejected: Orders backtrader refused (margin or rejection); 0 with ``sizing="open"``.
    """

    equity: pd.Series
    orders: int
    rejected: int


def _cerebro(model: CostModel, initial_cash: float) -> tuple[bt.Cerebro, CostModelCommission]:
    """A Cerebro whose broker charges the cost model: market orders filled at the next open."""
    comm = CostModelCommission()
    comm.model, comm.slippage = model, model.rate - model.fee_rate
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=False, maxcpus=1)
    cerebro.broker.set_cash(float(initial_cash))
    cerebro.broker.set_coc(False)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.set_slippage_perc(
        comm.slippage, slip_open=True, slip_limit=True, slip_match=True, slip_out=True
    )
    cerebro.broker.addcommissioninfo(comm)
    return cerebro, comm


def run_backtrader(
    bars: pd.DataFrame,
    targets: pd.Series,
    model: CostModel,
    initial_cash: float,
    inv_adv: pd.Series | None = None,
    sizing: Sizing = "open",
) -> BridgeResult:
    """Replay one asset's target weights in backtrader.

    Args:
        bars: Bars from the first decision day through the day after the last (more is cut).
        targets: Target weight by decision date, decided after that date's close.
        model: The cost model (``CostModel.from_spec(costs)``).
        initial_cash: Starting cash.
        inv_adv: ``1 / trailing dollar volume`` by date for the impact term (None: no impact).
        sizing: ``"open"`` (the env's convention, exact) or ``"close"`` (backtrader's native
            ``order_target_percent``); see the module docstring.

    Returns:
        The daily equity and order counts.
    """
    if sizing not in ("open", "close"):
        raise ConfigError(f"sizing must be 'open' or 'close', got {sizing!r}")
    if len(targets) == 0:
        raise ConfigError("no target weights to replay")
    weights = targets.astype("float64")
    if float(weights.abs().max()) > 1.0 + 1e-9:
        raise ConfigError(
            "backtrader's stock broker cannot borrow cash: target weights must lie in [-1, 1], "
            f"got {float(weights.abs().max()):.3f}; use env.max_leverage = 1"
        )
    first, last_decision = weights.index[0], weights.index[-1]
    after = bars.index[bars.index > last_decision]
    end = after[0] if len(after) else last_decision
    frame = bars.loc[(bars.index >= first) & (bars.index <= end), ["open", "high", "low", "close"]]
    frame = frame.assign(volume=bars["volume"], openinterest=0.0).astype("float64")
    dates = dict(zip(pd.DatetimeIndex(weights.index).date, weights.to_numpy(), strict=True))
    adv = {}
    if inv_adv is not None:
        adv = dict(zip(pd.DatetimeIndex(inv_adv.index).date, inv_adv.to_numpy(), strict=True))

    cerebro, comm = _cerebro(model, initial_cash)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(
        _TargetWeights, targets=dates, inv_adv=adv, model=model, comm=comm, sizing=sizing
    )
    cerebro.addanalyzer(_DailyEquity, _name="equity")
    strategy = cerebro.run()[0]
    rows = strategy.analyzers.equity.get_analysis()
    index = pd.DatetimeIndex([pd.Timestamp(d) for d, _ in rows], name="date")
    equity = pd.Series(np.array([v for _, v in rows]), index=index, name="equity")
    return BridgeResult(equity, strategy.orders, strategy.rejected)
