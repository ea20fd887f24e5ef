"""No lookahead: altering every bar after a date T leaves every position up to T unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtest_helpers import synthetic_bars, write_csv

from market_metarl.backtest.markets import (
    regime_markets,
    regime_spans,
    rolling_markets,
    schedule,
)
from market_metarl.backtest.rules import RuleAgent, TrailingReturn
from market_metarl.backtest.strategies import make_agent, make_agent_with_info
from market_metarl.data.sources import load_bars
from market_metarl.meta.protocol import rolling_blocks
from market_metarl.meta.run import TrainedRun
from market_metarl.types import DataError, RunError

STRATEGIES = (
    "adapted",
    "pooled",
    "finetune",
    "scratch",
    "momentum",
    "mean_reversion",
    "zeroshot",
    "vol_target",
    "tsmom",
    "macd",
)
RULES_AFTER_TRAINING = ("vol_target", "tsmom", "macd", "hmm_switch", "momentum", "zeroshot")


def _altered(bars: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    out = bars.copy()
    later = out.index > cut
    factor = np.random.default_rng(0).uniform(0.7, 1.4, int(later.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[later, col] = out.loc[later, col].to_numpy() * factor
    out.loc[later, "volume"] = out.loc[later, "volume"].to_numpy() * 3.0
    return out


def _positions(  # type: ignore[no-untyped-def]
    run: TrainedRun, markets, protocol: str, k: int, every: int, names=STRATEGIES
) -> pd.DataFrame:
    m = markets[0]
    cols = {s: schedule(make_agent(run, s, 0, m), m, protocol, k, every) for s in names}  # type: ignore[arg-type]
    return pd.DataFrame(cols, index=m.view.dates)


@pytest.mark.parametrize("protocol", ["rolling", "regime"])
def test_positions_up_to_t_ignore_later_bars(syn_run: Path, tmp_path: Path, protocol: str) -> None:
    run = TrainedRun.open(syn_run)
    bars = synthetic_bars(seed=11, days=260)
    cut = bars.index[170]
    original = write_csv(bars, tmp_path / "a.csv")
    altered = write_csv(_altered(bars, cut), tmp_path / "b.csv")
    k, every = 5, 7
    if protocol == "rolling":
        ms_a = rolling_markets(run, original, k, every)
        ms_b = rolling_markets(run, altered, k, every)
    else:
        # Regime boundaries are hindsight by design: fix them, then check causality within.
        spans = {"A": regime_spans(run, bars, "A", None)}
        ms_a = regime_markets(run, original, k, 30, spans={"A": spans["A"]})
        ms_b = regime_markets(run, altered, k, 30, spans={"B": spans["A"]})
    a = _positions(run, ms_a, protocol, k, every)
    b = _positions(run, ms_b, protocol, k, every)
    early = a.index <= cut
    assert (a.loc[early].abs().sum() > 0).any()
    pd.testing.assert_frame_equal(a.loc[early], b.loc[early], check_exact=True)
    assert not a.loc[~early].equals(b.loc[~early])


def test_baselines_after_the_training_split_ignore_later_bars(
    syn_run: Path, tmp_path: Path
) -> None:
    """The rule baselines, the HMM switch (fitted up to the split's end) and zeroshot, on bars
    that run past the training split: positions up to T are blind to bars after T."""
    run = TrainedRun.open(syn_run)
    bars = load_bars("synthetic:ar-regimes?seed=11&tasks=18&days=71")
    train_end = pd.Timestamp(run.tasks.splits.windows()["train"][1])
    cut = bars.index[int(bars.index.searchsorted(train_end)) + 150]
    original = write_csv(bars, tmp_path / "a.csv")
    altered = write_csv(_altered(bars, cut), tmp_path / "b.csv")
    ms_a, ms_b = (rolling_markets(run, spec, 5, 20) for spec in (original, altered))
    a = _positions(run, ms_a, "rolling", 5, 20, RULES_AFTER_TRAINING)
    b = _positions(run, ms_b, "rolling", 5, 20, RULES_AFTER_TRAINING)
    early = a.index <= cut
    assert (a.loc[early].abs().sum() > 0).all()  # every baseline has traded by then
    pd.testing.assert_frame_equal(a.loc[early], b.loc[early], check_exact=True)
    assert all(not a.loc[~early, s].equals(b.loc[~early, s]) for s in RULES_AFTER_TRAINING)
    _, fit = make_agent_with_info(run, "hmm_switch", 0, ms_a[0])
    assert fit is not None and fit["fit_on"] == ["A"] and fit["fit_end"] == str(train_end.date())


def test_trailing_return_is_causal(syn_run: Path) -> None:
    run = TrainedRun.open(syn_run)
    market = rolling_markets(run, "synthetic:ar-regimes?seed=3&tasks=3&days=80", 5, 10)[0]
    helper = TrailingReturn(market.bars, market.view, 20)
    t = 40
    d = market.view.dates[t]
    close = market.bars["close"]
    row = int(close.index.get_indexer(pd.DatetimeIndex([d]))[0])
    assert row >= 20
    assert helper.at(t) == pytest.approx(close.iloc[row] / close.iloc[row - 20] - 1)


def test_rule_agent_refuses_foreign_windows(syn_run: Path) -> None:
    run = TrainedRun.open(syn_run)
    market = rolling_markets(run, "synthetic:ar-regimes?seed=3&tasks=3&days=80", 5, 10)[0]
    agent = RuleAgent("momentum", market.bars, market.view)
    with pytest.raises(RunError, match="adapt"):
        agent.act(np.zeros(3))
    other = rolling_markets(run, "synthetic:ar-regimes?seed=4&tasks=3&days=80", 5, 10)[0]
    with pytest.raises(RunError):
        agent.adapt(other.view.episode.window(0, 4))


def test_short_data_is_refused(syn_run: Path, tmp_path: Path) -> None:
    run = TrainedRun.open(syn_run)
    spec = write_csv(synthetic_bars(days=6), tmp_path / "short.csv")
    with pytest.raises(DataError, match="adapt-days"):
        rolling_markets(run, spec, 5, 10)


def test_rolling_blocks_known_answer() -> None:
    assert rolling_blocks(3, 12, 4) == [(3, 7), (7, 11), (11, 12)]
    assert rolling_blocks(5, 5, 2) == []
    assert rolling_blocks(0, 9, 1)[-1] == (8, 9)
    with pytest.raises(DataError, match=">= 1"):
        rolling_blocks(0, 10, 0)


def test_rolling_markets_are_cut_by_rolling_blocks(syn_run: Path) -> None:
    run = TrainedRun.open(syn_run)
    market = rolling_markets(run, "synthetic:ar-regimes?seed=3&tasks=3&days=80", 5, 7)[0]
    blocks = [(s.adapt_row, s.stop_row) for s in market.segments]
    assert blocks == rolling_blocks(4, market.view.days, 7)
