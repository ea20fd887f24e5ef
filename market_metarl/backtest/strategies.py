"""The backtest's strategies: one closed registry, name -> how its agent is made.

Read by the runner (which strategies run, which run once per seed), by the plots (each one's
colour) and by any command-line validation of strategy names (:func:`check_strategies`); an
unknown name is an error that lists the valid ones.

Three kinds:

- ``learned``: an agent of the trained run, made by
  :meth:`TrainedRun.agent(name, seed) <market_metarl.meta.run.TrainedRun.agent>` (the adapted
  policy, the pooled policy, its fine-tuned twin, a policy trained from scratch on the K days, and
  buy-and-hold);
- ``frozen``: ``zeroshot``, the agent under test with adaptation switched off
  (:class:`~market_metarl.backtest.markets.FrozenAgent`: ``init()`` only, never ``adapt``), under
  the same protocol, so every backtest shows what adaptation adds;
- ``rule``: a :class:`~market_metarl.backtest.rules.RuleAgent` on the market's bars (momentum,
  mean reversion, volatility targeting, time-series momentum, the Baz et al. MACD trend, an HMM
  switch; see :data:`~market_metarl.backtest.rules.RULES`), under the run's long-only and
  leverage limits.

Strategies added later are appended to the registry, so the bootstrap draws of the earlier ones
(made in registry order) are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from market_metarl.types import ConfigError

if TYPE_CHECKING:  # types only: the registry imports nothing heavy, so a CLI can read it at once
    from market_metarl.backtest.markets import Market
    from market_metarl.backtest.settings import BacktestSettings
    from market_metarl.meta.contracts import Agent
    from market_metarl.meta.run import TrainedRun

Kind = Literal["learned", "frozen", "rule"]


@dataclass(frozen=True)
class Strategy:
    """How one strategy of the backtest is made and shown.

    Attributes:
        kind: ``learned`` (an agent of the trained run), ``frozen`` (the agent under test, never
            adapted) or ``rule`` (a rule on the bars).
        seeded: Its result depends on the seed, so it runs once per ``--seeds``; the others run
            once (seed 0).
        color: Its colour in the plots.
        emphasis: Drawn bold in the equity plot (the comparisons a reader looks at first); the
            others are drawn thin.
    """

    kind: Kind
    seeded: bool = False
    color: str = "#7f7f7f"
    emphasis: bool = False


STRATEGIES: dict[str, Strategy] = {
    "adapted": Strategy("learned", color="#d62728", emphasis=True),
    "pooled": Strategy("learned", color="#1f77b4", emphasis=True),
    "finetune": Strategy("learned", color="#9467bd"),
    "scratch": Strategy("learned", seeded=True, color="#8c564b"),
    "buy_and_hold": Strategy("learned", color="#000000", emphasis=True),
    "momentum": Strategy("rule", color="#2ca02c"),
    "mean_reversion": Strategy("rule", color="#ff7f0e"),
    "zeroshot": Strategy("frozen", color="#e377c2", emphasis=True),
    "vol_target": Strategy("rule", color="#17becf", emphasis=True),
    "tsmom": Strategy("rule", color="#bcbd22"),
    "macd": Strategy("rule", color="#7f7f7f"),
    "hmm_switch": Strategy("rule", color="#8c6d31"),
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


def make_agent(
    run: TrainedRun,
    name: str,
    seed: int,
    market: Market,
    settings: BacktestSettings | None = None,
) -> Agent:
    """The agent of strategy ``name`` (seed ``seed``) for one market.

    Args:
        run: The trained run.
        name: A strategy of :data:`STRATEGIES`.
        seed: Seed of a seeded strategy.
        market: The market traded.
        settings: The ``[backtest]`` table (default: the run's).

    Raises:
        ConfigError: ``name`` is not a strategy (the message lists the valid ones).
    """
    return make_agent_with_info(run, name, seed, market, settings)[0]


def make_agent_with_info(
    run: TrainedRun,
    name: str,
    seed: int,
    market: Market,
    settings: BacktestSettings | None = None,
) -> tuple[Agent, dict[str, Any] | None]:
    """:func:`make_agent`, and what a fitted rule was fitted on (``hmm_switch``; else None)."""
    kind = strategy(name).kind
    if kind == "frozen":
        from market_metarl.backtest.markets import FrozenAgent

        return FrozenAgent(run.agent(UNDER_TEST, seed)), None
    if kind == "rule":
        from market_metarl.backtest.rules import RuleAgent, RuleInputs, switch_hmm
        from market_metarl.backtest.settings import backtest_settings

        s = settings or backtest_settings(run.section("backtest"))
        hmm, info = None, None
        if name == "hmm_switch":
            hmm, info = switch_hmm(run, market.bars, market.symbol, s)
        env = run.env_spec
        inputs = RuleInputs(s, env.long_only, env.max_leverage, hmm)
        agent = RuleAgent(name, market.bars, market.view, env.long_only, env.max_leverage, inputs)
        return agent, info
    return run.agent(name, seed), None


def load_learned(run: TrainedRun, names: Iterable[str]) -> None:
    """Read the checkpoint behind every learned strategy of ``names`` (before a progress bar)."""
    for name in names:
        if strategy(name).kind in ("learned", "frozen"):
            run.agent(UNDER_TEST if strategy(name).kind == "frozen" else name, 0)
