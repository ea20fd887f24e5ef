"""The backtest's strategies: one closed registry, name -> how its agent is made.

Read by the runner (which strategies run, which run once per seed), by the plots (each one's
colour) and by any command-line validation of strategy names (:func:`check_strategies`); an
unknown name is an error that lists the valid ones.

Two kinds:

- ``learned``: an agent of the trained run, made by
  :meth:`TrainedRun.agent(name, seed) <market_metarl.meta.run.TrainedRun.agent>` (the adapted
  policy, the pooled policy, its fine-tuned twin, a policy trained from scratch on the K days, and
  buy-and-hold);
- ``rule``: a :class:`~market_metarl.backtest.rules.RuleAgent` on the market's bars (momentum and
  mean reversion; see :data:`~market_metarl.backtest.rules.RULES`), under the run's long-only and
  leverage limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from market_metarl.types import ConfigError

if TYPE_CHECKING:  # types only: the registry imports nothing heavy, so a CLI can read it at once
    from market_metarl.backtest.markets import Market
    from market_metarl.meta.contracts import Agent
    from market_metarl.meta.run import TrainedRun

Kind = Literal["learned", "rule"]


@dataclass(frozen=True)
class Strategy:
    """How one strategy of the backtest is made and shown.

    Attributes:
        kind: ``learned`` (an agent of the trained run) or ``rule`` (a rule on the bars).
        seeded: Its result depends on the seed, so it runs once per ``--seeds``; the others run
            once (seed 0).
        color: Its colour in the plots.
    """

    kind: Kind
    seeded: bool = False
    color: str = "#7f7f7f"


STRATEGIES: dict[str, Strategy] = {
    "adapted": Strategy("learned", color="#d62728"),
    "pooled": Strategy("learned", color="#1f77b4"),
    "finetune": Strategy("learned", color="#9467bd"),
    "scratch": Strategy("learned", seeded=True, color="#8c564b"),
    "buy_and_hold": Strategy("learned", color="#000000"),
    "momentum": Strategy("rule", color="#2ca02c"),
    "mean_reversion": Strategy("rule", color="#ff7f0e"),
}
"""Every strategy a backtest can run, in report order; ``adapted`` is the one under test."""

UNDER_TEST = "adapted"
"""The strategy every backtest runs and compares with the others."""


def strategy_names() -> tuple[str, ...]:
    """Every strategy name, in report order."""
    return tuple(STRATEGIES)


def strategy(name: str) -> Strategy:
    """The registry entry of ``name``.

    Raises:
        ConfigError: ``name`` is not a strategy (the message lists the valid ones).
    """
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}") from None


def check_strategies(names: Iterable[str]) -> tuple[str, ...]:
    """Validate strategy names (for the runner and the command line).

    Args:
        names: Requested strategies.

    Returns:
        The names, in the order given.

    Raises:
        ConfigError: A name is unknown (the message lists the valid ones), or ``adapted`` is missing.
    """
    chosen = tuple(names)
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        raise ConfigError(
            f"unknown strategy {', '.join(map(repr, unknown))}; valid: {', '.join(STRATEGIES)}"
        )
    if UNDER_TEST not in chosen:
        raise ConfigError(
            f"the strategies must include {UNDER_TEST!r} (the one under test); got {', '.join(chosen)}"
        )
    return chosen


def seeds_of(name: str, seeds: int) -> range:
    """Seeds a strategy runs with: ``range(seeds)`` if it is seeded, else only seed 0."""
    return range(seeds if strategy(name).seeded else 1)


def make_agent(run: TrainedRun, name: str, seed: int, market: Market) -> Agent:
    """The agent of strategy ``name`` (seed ``seed``) for one market.

    Raises:
        ConfigError: ``name`` is not a strategy (the message lists the valid ones).
    """
    if strategy(name).kind == "rule":
        from market_metarl.backtest.rules import RuleAgent

        env = run.env_spec
        return RuleAgent(name, market.bars, market.view, env.long_only, env.max_leverage)
    return run.agent(name, seed)


def load_learned(run: TrainedRun, names: Iterable[str]) -> None:
    """Read the checkpoint behind every learned strategy of ``names`` (before a progress bar)."""
    for name in names:
        if strategy(name).kind == "learned":
            run.agent(name, 0)
