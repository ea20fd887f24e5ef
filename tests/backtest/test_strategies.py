"""The one strategy registry: every name makes its agent, unknown names are refused with the list."""

from __future__ import annotations

from pathlib import Path

import pytest

from market_metarl.backtest.markets import rolling_markets
from market_metarl.backtest.rules import RULES, RuleAgent
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
    assert {n for n, e in STRATEGIES.items() if e.kind == "rule"} == set(RULES)
    assert UNDER_TEST in STRATEGIES and STRATEGIES[UNDER_TEST].kind == "learned"


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
