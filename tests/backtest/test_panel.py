"""Panel evaluation: every strategy on the same days, known answers, and no lookahead."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.backtest.panel import (
    LEARNED,
    RULE_BASELINES,
    PanelAsset,
    Period,
    equal_weight,
    learned_panel,
    rule_panel,
    seed_average,
)
from market_metarl.data.sources import load_bars
from market_metarl.meta.run import TrainedRun

PERIOD = Period(dt.date(2019, 1, 2), dt.date(2019, 6, 28))


@pytest.fixture(scope="module")
def panel(syn_run: Path) -> tuple[TrainedRun, list[PanelAsset], dict[tuple[str, str], pd.Series]]:
    run = TrainedRun.open(syn_run)
    assets = [PanelAsset(s, load_bars(f"bundled:{s}")) for s in ("SPY", "QQQ")]
    books = learned_panel(run, assets, PERIOD, every=10)
    books.update(rule_panel(run.experiment, assets, PERIOD, dt.date(2012, 12, 31)))
    return run, assets, books


def test_every_strategy_trades_the_same_days(
    panel: tuple[TrainedRun, list[PanelAsset], dict[tuple[str, str], pd.Series]],
) -> None:
    _, assets, books = panel
    for asset in assets:
        days = [books[s, asset.symbol].index for s in (*LEARNED, *RULE_BASELINES)]
        assert all(d.equals(days[0]) for d in days)
        assert days[0][0] > pd.Timestamp(PERIOD.start) and days[0][-1] <= pd.Timestamp("2019-07-01")


def test_buy_and_hold_earns_the_asset_less_its_costs(
    panel: tuple[TrainedRun, list[PanelAsset], dict[tuple[str, str], pd.Series]],
) -> None:
    _, assets, books = panel
    bars = assets[0].bars
    r = books["buy_and_hold", "SPY"]
    closes = bars["close"]
    # after the first fill the book holds 100%: its return is the close-to-close return
    later = r.iloc[2:]
    expected = closes.pct_change().reindex(later.index)
    np.testing.assert_allclose(later.to_numpy(), expected.to_numpy(), atol=2e-6)
    # the first day buys at the open, paying fee + slippage on the whole book
    first = r.index[0]
    prev = bars.index[int(bars.index.get_indexer(pd.DatetimeIndex([first]))[0]) - 1]
    assert prev >= pd.Timestamp(PERIOD.start)  # decided on a period day, filled the next
    gross = closes[first] / bars["open"][first]
    assert r.iloc[0] < gross - 1 and r.iloc[0] == pytest.approx(gross - 1, abs=1e-3)


def test_no_strategy_sees_the_future(
    panel: tuple[TrainedRun, list[PanelAsset], dict[tuple[str, str], pd.Series]],
) -> None:
    run, assets, books = panel
    cut = pd.Timestamp("2019-04-01")
    shocked_bars = assets[0].bars.copy()
    after = shocked_bars.index > cut
    shocked_bars.loc[after, ["open", "high", "low", "close"]] *= np.linspace(0.5, 1.5, after.sum())[
        :, None
    ]
    shocked = [PanelAsset("SPY", shocked_bars)]
    again = learned_panel(run, shocked, PERIOD, every=10)
    again.update(rule_panel(run.experiment, shocked, PERIOD, dt.date(2012, 12, 31)))
    for s in (*LEARNED, *RULE_BASELINES):
        a, b = books[s, "SPY"], again[s, "SPY"]
        np.testing.assert_array_equal(a.loc[:cut].to_numpy(), b.loc[:cut].to_numpy(), err_msg=s)


def test_portfolio_and_seed_average_are_plain_means() -> None:
    days = pd.bdate_range("2020-01-01", periods=4)
    a = pd.Series([0.01, 0.02, 0.03, 0.04], index=days)
    b = pd.Series([0.03, 0.00], index=days[1:3])
    ew = equal_weight({"A": a, "B": b})
    np.testing.assert_allclose(ew.to_numpy(), [0.01, 0.025, 0.015, 0.04])
    avg = seed_average([a, a * 3])
    np.testing.assert_allclose(avg.to_numpy(), (a * 2).to_numpy())
