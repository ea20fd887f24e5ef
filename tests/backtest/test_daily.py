"""Several assets in one backtest: per asset, the equal-weight portfolio, returns, paired intervals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtest_helpers import synthetic_bars, write_csv

from market_metarl.backtest.daily import (
    PORTFOLIO,
    asset_figures,
    by_symbol,
    paired_intervals,
    portfolio,
    returns_frame,
)
from market_metarl.backtest.figures import statistics
from market_metarl.backtest.markets import data_sources
from market_metarl.backtest.results import Backtest
from market_metarl.backtest.runner import compute
from market_metarl.meta.run import TrainedRun
from market_metarl.types import ConfigError, DataError

NAMES = ("adapted", "pooled", "buy_and_hold", "momentum", "zeroshot", "vol_target")
"""In registry order (the order the bootstrap draws in)."""


@pytest.fixture(scope="module")
def two_assets(syn_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Backtest:
    root = tmp_path_factory.mktemp("two")
    a = write_csv(synthetic_bars(seed=9, days=200), root / "aaa.csv")
    b = write_csv(synthetic_bars(seed=10, days=230), root / "bbb.csv")
    return compute(TrainedRun.open(syn_run), f"{a},{b}", "rolling", 5, 10, strategies=NAMES)


def test_data_sources_are_comma_separated() -> None:
    assert data_sources(None) is None
    assert data_sources("bundled:SPY") == ["bundled:SPY"]
    assert data_sources("bundled:SPY, bundled:QQQ") == ["bundled:SPY", "bundled:QQQ"]
    assert data_sources(["bundled:SPY", "csv:a.csv,csv:b.csv"]) == [
        "bundled:SPY",
        "csv:a.csv",
        "csv:b.csv",
    ]
    with pytest.raises(ConfigError, match="no source"):
        data_sources(" , ")
    with pytest.raises(DataError, match="SPY"):
        data_sources("bundled:SPY,bundled:SPY")


def test_portfolio_is_the_mean_of_the_assets_on_common_days(two_assets: Backtest) -> None:
    bt = two_assets
    assert [m.symbol for m in bt.markets] == ["AAA", "BBB"]
    per = by_symbol(bt)
    port = portfolio(bt)
    for label in NAMES:
        ra, rb = per["AAA"][label][0], per["BBB"][label][0]
        common = ra.index.intersection(rb.index)
        assert len(common) > 150 and port[label][0].index.equals(common)
        np.testing.assert_allclose(port[label][0], (ra.loc[common] + rb.loc[common]) / 2)
    figures = asset_figures(bt)
    assert set(figures) == {"by_symbol", PORTFOLIO}
    assert figures[PORTFOLIO]["pooled"]["n_days"] == len(port["pooled"][0])
    frame = returns_frame(bt)
    assert set(frame["symbol"]) == {"AAA", "BBB", PORTFOLIO}
    got = frame[(frame["symbol"] == PORTFOLIO) & (frame["strategy"] == "adapted")]["return"]
    np.testing.assert_allclose(got.to_numpy(), port["adapted"][0].to_numpy())


def test_zeroshot_books_the_zero_shot_of_adapted(two_assets: Backtest) -> None:
    for acc in two_assets.accounts:
        if acc.strategy == "zeroshot":
            pre = two_assets.zero_shot[acc.market.symbol]
            for mine, theirs in zip(acc.task_returns(), pre, strict=True):
                np.testing.assert_array_equal(mine, theirs)


def test_paired_intervals_on_the_portfolio_and_per_asset(two_assets: Backtest) -> None:
    doc = paired_intervals(two_assets, 20, 200, np.random.default_rng(0))
    assert doc["series"] == "equal-weight portfolio"
    assert set(doc["pairs"]) == {"adapted - zeroshot", "adapted - pooled", "adapted - vol_target"}
    assert set(doc["by_symbol"]) == {"AAA", "BBB"}
    short = paired_intervals(two_assets, 150, 50, np.random.default_rng(0))
    assert "skipped" in short["pairs"]["adapted - pooled"]


def test_later_strategies_change_no_earlier_number(two_assets: Backtest) -> None:
    """Figures, task intervals and P(beats) of a strategy ignore strategies after it."""
    early = NAMES[:4]
    subset = replace(two_assets, accounts=[a for a in two_assets.accounts if a.strategy in early])
    full = statistics(two_assets, 100, np.random.default_rng(3))
    part = statistics(subset, 100, np.random.default_rng(3))
    for name in early:
        assert full["figures"][name] == part["figures"][name]
        assert full["intervals"][name] == part["intervals"][name]
    for name in early[1:]:
        assert full["p_beats"][name] == part["p_beats"][name]
    assert (
        full["paired"]["pairs"]["adapted - pooled"] == part["paired"]["pairs"]["adapted - pooled"]
    )


def test_one_equity_per_strategy_and_asset(two_assets: Backtest) -> None:
    labels = pd.Series([(a.label, a.market.symbol) for a in two_assets.accounts])
    assert not labels.duplicated().any() and len(labels) == 2 * len(NAMES)
