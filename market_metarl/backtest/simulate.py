"""The env's side of a backtest: the same target weights through the env simulator.

:func:`simulate` books a target-weight schedule with :class:`~market_metarl.envs.simulator.MarketSimulator`
(explicit cash and fractional shares, the cost model, fills at the next open): the accounting the
meta-learners were trained on. :func:`reconcile` compares it with backtrader's daily equity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_metarl.envs.costs import CostModel, inverse_adv, trailing_adv
from market_metarl.envs.simulator import MarketSimulator
from market_metarl.types import DataError

RECONCILE_TOLERANCE = 1e-9
"""Largest accepted ``|equity_backtrader / equity_env - 1|`` on any day (see the bridge)."""


@dataclass(frozen=True)
class Booked:
    """A schedule booked by the env simulator.

    Attributes:
        equity: Equity at each close from the first decision day through the day after the last.
        traded: Traded weight ``|w - u|`` of each day after the first (indexed by that day).
    """

    equity: pd.Series
    traded: pd.Series


def inv_adv_of(bars: pd.DataFrame) -> pd.Series:
    """``1 / trailing dollar volume`` of each bar (causal; 0 where volume is unknown)."""
    adv = trailing_adv(bars["close"].to_numpy(), bars["volume"].to_numpy())
    return pd.Series(inverse_adv(adv), index=bars.index)


def account_frame(bars: pd.DataFrame, targets: pd.Series) -> pd.DataFrame:
    """Bars from the first decision day through the execution day after the last decision."""
    first, last = targets.index[0], targets.index[-1]
    after = bars.index[bars.index > last]
    if len(after) == 0:
        raise DataError(f"no bar after the last decision day {last.date()} to execute it on")
    frame = bars.loc[(bars.index >= first) & (bars.index <= after[0])]
    if len(frame) != len(targets) + 1:
        raise DataError("target dates do not follow the bars one decision day per bar")
    return frame


def simulate(
    bars: pd.DataFrame,
    targets: pd.Series,
    model: CostModel,
    initial_cash: float,
    inv_adv: pd.Series | None = None,
) -> Booked:
    """Book target weights (one per decision day, consecutive bars) with the env simulator."""
    frame = account_frame(bars, targets)
    opens = frame["open"].to_numpy(dtype=np.float64).reshape(1, -1, 1)
    closes = frame["close"].to_numpy(dtype=np.float64).reshape(1, -1, 1)
    adv = None if inv_adv is None else inv_adv.reindex(frame.index).to_numpy().reshape(1, -1, 1)
    sim = MarketSimulator(opens, closes, model, initial_cash, adv)
    sim.reset(0)
    equity = [float(initial_cash)]
    traded = []
    for w in targets.to_numpy(dtype=np.float64):
        step = sim.step(np.array([[w]]))
        equity.append(float(step.equity[0]))
        traded.append(float(step.turnover[0]))
    return Booked(
        pd.Series(equity, index=frame.index, name="equity"),
        pd.Series(traded, index=frame.index[1:], name="traded"),
    )


def reconcile(backtrader_equity: pd.Series, env_equity: pd.Series) -> float:
    """``max |E_backtrader / E_env - 1|`` over the common days (inf if the days differ)."""
    if not backtrader_equity.index.equals(env_equity.index):
        return float("inf")
    ratio = backtrader_equity.to_numpy() / env_equity.to_numpy()
    return float(np.max(np.abs(ratio - 1.0)))
