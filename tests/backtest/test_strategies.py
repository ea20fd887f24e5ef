"""The one strategy registry: every name makes its agent, unknown names are refused with the list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from market_metarl.backtest.markets import FrozenAgent, rolling_markets, schedule
from market_metarl.backtest.rules import RULES, RuleAgent
from market_metarl.backtest.settings import BacktestSettings
from market_metarl.backtest.strategies import (
    STRATEGIES,
    UNDER_TEST,
    check_strategies,
    make_agent,
    seeds_of,
    strategy_names,
)
from market_metarl.meta.run import TrainedRun
from market_metarl.types import ConfigError

SOURCE = "synthetic:ar-regimes?seed=3&tasks=3&days=80"


def test_every_strategy_makes_its_agent(syn_run: Path) -> None:
    run = TrainedRun.open(syn_run)
    market = rolling_markets(run, SOURCE, 5, 10)[0]
    for name, entry in STRATEGIES.items():
        agent = make_agent(run, name, 0, market)
        assert isinstance(agent, RuleAgent) == (entry.kind == "rule"), name
        assert isinstance(agent, FrozenAgent) == (entry.kind == "frozen"), name
    assert {n for n, e in STRATEGIES.items() if e.kind == "rule"} == set(RULES)
    assert UNDER_TEST in STRATEGIES and STRATEGIES[UNDER_TEST].kind == "learned"
    assert {"zeroshot", "vol_target", "tsmom", "macd", "hmm_switch"} <= set(STRATEGIES)
    emphasised = {n for n, e in STRATEGIES.items() if e.emphasis}
    assert emphasised == {"adapted", "zeroshot", "pooled", "buy_and_hold", "vol_target"}


def test_zeroshot_is_the_adapted_agent_never_adapted(syn_run: Path) -> None:
    run = TrainedRun.open(syn_run)
    market = rolling_markets(run, SOURCE, 5, 10)[0]
    frozen = make_agent(run, "zeroshot", 0, market)
    assert isinstance(frozen, FrozenAgent) and frozen.inner.name == UNDER_TEST
    adapted = make_agent(run, UNDER_TEST, 0, market)
    a, b = (schedule(x, market, "rolling", 5, 10) for x in (frozen, FrozenAgent(adapted)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, schedule(adapted, market, "rolling", 5, 10))


def test_rule_settings_come_from_the_backtest_table(syn_run: Path) -> None:
    run = TrainedRun.open(syn_run)
    market = rolling_markets(run, SOURCE, 5, 10)[0]
    low = make_agent(run, "vol_target", 0, market, BacktestSettings(vol_target=0.05))
    high = make_agent(run, "vol_target", 0, market, BacktestSettings(vol_target=0.10))
    assert isinstance(low, RuleAgent) and isinstance(high, RuleAgent)
    w_low, w_high = np.array(low.weights), np.array(high.weights)
    moving = (w_high > 0) & (w_high < run.env_spec.max_leverage)
    assert moving.any()
    np.testing.assert_allclose(w_high[moving], 2 * w_low[moving])
    assert run.section("backtest") == {"vol_target": 0.15, "block_days": 20}  # kept by the run
    with pytest.raises(ConfigError, match="valid keys"):
        make_agent(TrainedRun.open(syn_run, {"backtest": {"target": 1}}), "vol_target", 0, market)


def test_unknown_names_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"'sideways'.*valid: adapted, pooled"):
        check_strategies(["adapted", "sideways"])
    with pytest.raises(ConfigError, match="must include 'adapted'"):
        check_strategies(["pooled"])
    assert check_strategies(["momentum", "adapted"]) == ("momentum", "adapted")
    assert strategy_names()[0] == UNDER_TEST


def test_only_seeded_strategies_run_per_seed() -> None:
    assert list(seeds_of("scratch", 3)) == [0, 1, 2]
    assert list(seeds_of("adapted", 3)) == [0]
    with pytest.raises(ConfigError, match="valid"):
        seeds_of("oracle", 1)
