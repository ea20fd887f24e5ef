"""``run_backtest``: every strategy through a protocol, backtrader and the env's books, to files.

Phases: open the run and build the markets (:mod:`~market_metarl.backtest.protocols`); compute each
strategy's target weights (per seed for seeded strategies); replay each schedule in backtrader
(:mod:`~market_metarl.backtest.bridge`) and book it with the env simulator
(:mod:`~market_metarl.backtest.ledger`), reconciling the two; compute metrics and statistics; write
``metrics.json``, ``positions.csv``, the PNGs and ``report.html`` into a temporary folder that is
renamed into ``out_dir`` only when everything is written, so an error leaves nothing half-written.

Days counted in the metrics (``active days``): the days each traded decision earns, plus, after a
task, the day the book is closed (its overnight gap and exit cost). Days between regime tasks are
flat (zero return) and not counted. Across symbols the active days of each symbol's account are
pooled in symbol order.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.backtest import metrics as M
from market_metarl.backtest.ledger import RECONCILE_TOLERANCE, inv_adv_of, reconcile, simulate
from market_metarl.backtest.protocols import (
    HINDSIGHT_NOTE,
    PROTOCOLS,
    FrozenAgent,
    Market,
    Protocol,
    earning_days,
    regime_markets,
    rolling_markets,
    schedule,
)
from market_metarl.backtest.rules import RULES, RuleAgent
from market_metarl.backtest.stats import (
    bootstrap_ci,
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    prob_beats,
)
from market_metarl.envs.costs import CostModel
from market_metarl.meta.contracts import Agent
from market_metarl.meta.run import STRATEGIES, TrainedRun
from market_metarl.parallel import LOCAL, Backend
from market_metarl.types import TRADING_DAYS_PER_YEAR, ConfigError, RunError

ALL_STRATEGIES: tuple[str, ...] = (*STRATEGIES, *RULES)
SEEDED: frozenset[str] = frozenset({"scratch"})
"""Strategies whose result depends on the seed; the others run once."""
PPY = TRADING_DAYS_PER_YEAR


@dataclass
class Account:
    """One strategy (and seed) trading one market: its schedule and both books."""

    label: str
    strategy: str
    seed: int
    market: Market
    targets: pd.Series
    equity: pd.Series
    env_equity: pd.Series
    traded: pd.Series
    task_days: list[pd.DatetimeIndex]
    orders: int
    rejected: int

    def returns(self) -> pd.Series:
        return self.equity.pct_change().iloc[1:]

    def task_returns(self) -> list[np.ndarray]:
        r = self.returns()
        return [r.loc[days].to_numpy() for days in self.task_days]

    @property
    def active(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(np.concatenate([d.to_numpy() for d in self.task_days]))


@dataclass
class Backtest:
    """Everything computed, before it is written."""

    protocol: Protocol
    adapt_days: int
    horizon: int
    every: int
    seeds: int
    markets: list[Market]
    accounts: list[Account]
    zero_shot: dict[str, list[np.ndarray]]
    costs: dict[str, float]
    native: dict[str, Any]
    native_equity: pd.Series


def _label(strategy: str, seed: int) -> str:
    return strategy if seed == 0 else f"{strategy}/seed{seed}"


def _task_days(market: Market, earn: pd.DatetimeIndex, span_stop: int) -> list[pd.DatetimeIndex]:
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


def _agent(run: TrainedRun, strategy: str, seed: int, market: Market) -> Agent:
    if strategy in RULES:
        env = run.experiment.env
        return RuleAgent(strategy, market.bars, market.view, env.long_only, env.max_leverage)
    return run.agent(strategy, seed)


def _book(
    label: str,
    strategy: str,
    seed: int,
    market: Market,
    weights: np.ndarray,
    model: CostModel,
    cash: float,
) -> Account:
    from market_metarl.backtest.bridge import run_backtrader

    view = market.view
    earn = earning_days(view, market.bars)
    span_stop = min(market.stop_row + 1, view.days)  # one flat decision closes the last task
    rows = slice(market.first_row, span_stop)
    targets = pd.Series(weights[rows], index=view.dates[rows])
    adv = inv_adv_of(market.bars) if model.impact_coef else None
    bt_run = run_backtrader(market.bars, targets, model, cash, adv)
    env = simulate(market.bars, targets, model, cash, adv)
    return Account(
        label,
        strategy,
        seed,
        market,
        targets,
        bt_run.equity,
        env.equity,
        env.traded,
        _task_days(market, earn, span_stop),
        bt_run.orders,
        bt_run.rejected,
    )


def _native_check(
    account: Account, model: CostModel, cash: float
) -> tuple[dict[str, Any], pd.Series]:
    """backtrader's own ``order_target_percent`` on one account, against the env's books."""
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
class _Job:
    """What every piece of a backtest reads (shipped once to each Ray worker)."""

    run: TrainedRun
    markets: list[Market]
    protocol: Protocol
    adapt_days: int
    every: int
    model: CostModel
    cash: float


@dataclass(frozen=True)
class _Piece:
    """One strategy and seed on one market: its account, and the adapted strategy's zero-shot
    task returns (its policy before adapting, on the same days)."""

    account: Account
    zero_shot: list[np.ndarray] | None


def _backtest_piece(job: _Job, unit: tuple[str, int, int]) -> _Piece:
    """The piece function of a backtest: one ``(strategy, seed, market index)`` through the
    protocol and both books."""
    strategy, seed, m = unit
    market = job.markets[m]
    agent = _agent(job.run, strategy, seed, market)
    weights = schedule(agent, market, job.protocol, job.adapt_days, job.every)
    account = _book(_label(strategy, seed), strategy, seed, market, weights, job.model, job.cash)
    zero_shot = None
    if strategy == "adapted":
        pre = schedule(FrozenAgent(agent), market, job.protocol, job.adapt_days, job.every)
        booked = _book("zero-shot", strategy, seed, market, pre, job.model, job.cash)
        zero_shot = booked.task_returns()
    return _Piece(account, zero_shot)


def compute(
    run: TrainedRun,
    data: str | None,
    protocol: Protocol,
    adapt_days: int | None = None,
    every: int = 20,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    seeds: int = 1,
    strategies: Sequence[str] = ALL_STRATEGIES,
    progress: bool = False,
    backend: Backend | None = None,
) -> Backtest:
    """Run every strategy through the protocol and both books (no files written).

    Each ``(strategy, seed, market)`` is an independent piece run by ``backend`` (default:
    in this process); results are assembled in the same order whatever backend ran them.
    """
    from tqdm import tqdm

    exp = run.experiment
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if run.shapes.n_assets != 1:
        raise RunError(
            f"the backtest trades one asset; this run's policies trade {run.shapes.n_assets}"
        )
    unknown = [s for s in strategies if s not in ALL_STRATEGIES]
    if unknown or "adapted" not in strategies:
        raise ConfigError(f"strategies must include 'adapted' and come from {ALL_STRATEGIES}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    k = adapt_days if adapt_days is not None else exp.train.adapt_days
    if k < 2:
        raise ConfigError(f"--adapt-days must be >= 2, got {k}")
    h = exp.train.horizon
    if protocol == "regime":
        markets = regime_markets(run, data, k, h, start, end)
    else:
        markets = rolling_markets(run, data, k, every, start, end)
    model = CostModel.from_spec(exp.tasks.costs, PPY)
    cash = exp.env.initial_cash
    units = [
        (s, seed, m)
        for s in strategies
        for seed in range(seeds if s in SEEDED else 1)
        for m in range(len(markets))
    ]
    for strategy in strategies:  # load every checkpoint before the progress bar starts
        if strategy not in RULES:
            run.agent(strategy, 0)
    job = _Job(run, markets, protocol, k, every, model, cash)
    pieces: list[_Piece | None] = [None] * len(units)
    with tqdm(total=len(units), desc="backtest", unit="run", disable=not progress) as bar:
        for index, piece in (backend or LOCAL).imap(_backtest_piece, units, job):
            pieces[index] = piece
            bar.set_postfix_str(f"{units[index][0]} {markets[units[index][2]].symbol}")
            bar.update(1)
    accounts: list[Account] = []
    zero_shot: dict[str, list[np.ndarray]] = {}
    for (_, _, m), piece in zip(units, pieces, strict=True):
        assert piece is not None
        accounts.append(replace(piece.account, market=markets[m]))  # one copy of each market
        if piece.zero_shot is not None:
            zero_shot.setdefault(markets[m].symbol, []).extend(piece.zero_shot)
    native, native_equity = _native_check(accounts[0], model, cash)
    costs = {f: float(getattr(exp.tasks.costs, f)) for f in exp.tasks.costs.__dataclass_fields__}
    return Backtest(
        protocol, k, h, every, seeds, markets, accounts, zero_shot, costs, native, native_equity
    )


def _pooled(bt: Backtest, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Active-day returns and traded weights of one label, pooled over markets."""
    rets, traded = [], []
    for acc in bt.accounts:
        if acc.label == label:
            days = acc.active
            rets.append(acc.returns().loc[days].to_numpy())
            traded.append(acc.traded.loc[days].to_numpy())
    return np.concatenate(rets), np.concatenate(traded)


def _tasks(bt: Backtest, strategy: str) -> tuple[list[list[np.ndarray]], list[str]]:
    """``runs[task][seed]`` daily returns of a strategy, and each task's symbol (the strata)."""
    per_seed: dict[int, list[np.ndarray]] = {}
    strata: list[str] = []
    for acc in bt.accounts:
        if acc.strategy == strategy:
            per_seed.setdefault(acc.seed, []).extend(acc.task_returns())
            if acc.seed == 0:
                strata += [acc.market.symbol] * len(acc.task_days)
    seeds = sorted(per_seed)
    runs = [[per_seed[s][t] for s in seeds] for t in range(len(strata))]
    return runs, strata


def task_sharpes(runs: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.array([M.sharpe(r, PPY) for r in seeds]) for seeds in runs]


def statistics(bt: Backtest, n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    """Per-strategy figures with intervals, P(adapted beats X), the deflated Sharpe ratio."""
    labels = list(dict.fromkeys(a.label for a in bt.accounts))
    strategies = list(dict.fromkeys(a.strategy for a in bt.accounts))
    figures = {label: M.summary(*_pooled(bt, label), PPY) for label in labels}
    stats_fns = {
        "sharpe": lambda r: M.sharpe(r, PPY),
        "annual_return": lambda r: M.annual_return(r, PPY),
        "max_drawdown": M.max_drawdown,
    }
    intervals: dict[str, dict[str, Any]] = {}
    scores: dict[str, list[np.ndarray]] = {}
    strata: list[str] = []
    for strategy in strategies:
        runs, strata = _tasks(bt, strategy)
        intervals[strategy] = {
            name: bootstrap_ci(runs, fn, rng, n_boot, strata=strata).as_dict()
            for name, fn in stats_fns.items()
        }
        scores[strategy] = task_sharpes(runs)
    p_beats = {
        other: prob_beats(scores["adapted"], scores[other], rng, n_boot, strata=strata).as_dict()
        for other in strategies
        if other != "adapted"
    }
    trials = {label: moments(_pooled(bt, label)[0]) for label in labels}
    finite = {k: v for k, v in trials.items() if math.isfinite(v[0])}
    deflated: dict[str, Any] = {"n_trials": len(labels)}
    if finite:
        best = max(finite, key=lambda k: finite[k][0])
        sr, skew, kurt = finite[best]
        var = float(np.var([v[0] for v in finite.values()], ddof=1)) if len(finite) > 1 else 0.0
        n_obs = len(_pooled(bt, best)[0])
        deflated.update(
            best=best,
            sharpe_annual=sr * math.sqrt(PPY),
            sr0_annual=expected_max_sharpe(len(labels), var) * math.sqrt(PPY),
            deflated_sharpe=deflated_sharpe(sr, n_obs, len(labels), var, skew, kurt),
            n_obs=n_obs,
            skew=skew,
            kurtosis=kurt,
        )
    return {"figures": figures, "intervals": intervals, "p_beats": p_beats, "deflated": deflated}


def reconciliation(bt: Backtest) -> dict[str, Any]:
    """Largest daily relative difference between backtrader's and the env's equity."""
    per: dict[str, float] = {}
    for acc in bt.accounts:
        diff = reconcile(acc.equity, acc.env_equity)
        per[acc.label] = max(per.get(acc.label, 0.0), diff)
    worst = max(per.values())
    weight_only = bt.costs["min_fee"] == 0 and bt.costs["impact_coef"] == 0
    return {
        "max_abs_rel_diff": worst,
        "tolerance": RECONCILE_TOLERANCE,
        "within_tolerance": bool(worst <= RECONCILE_TOLERANCE),
        "tolerance_applies": weight_only,
        "by_strategy": per,
        "rejected_orders": sum(a.rejected for a in bt.accounts),
        "method": (
            "same target weights through backtrader (orders sized at the next open, fractional "
            "shares, slippage in the fill price, commission from the cost model) and through the "
            "env simulator; max over every account and day of |E_bt / E_env - 1|"
        ),
        "native_order_target_percent": bt.native,
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def positions_frame(bt: Backtest) -> pd.DataFrame:
    """``date,strategy,symbol,position,equity``: one row per account and day (the last day of an
    account has no decision: its position is empty)."""
    frames = []
    for acc in bt.accounts:
        position = acc.targets.reindex(acc.equity.index)
        frames.append(
            pd.DataFrame(
                {
                    "date": pd.DatetimeIndex(acc.equity.index).strftime("%Y-%m-%d"),
                    "strategy": acc.label,
                    "symbol": acc.market.symbol,
                    "position": position.to_numpy(),
                    "equity": acc.equity.to_numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _check_out(out: Path) -> None:
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.json").exists())
    ):
        raise ConfigError(
            f"--out {out} exists and is not an earlier backtest; choose a new folder or remove it"
        )


def _swap_in(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_backtest(
    run_dir: str | Path,
    data_spec: str | None,
    protocol: str = "regime",
    adapt_days: int | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    seeds: int = 1,
    out_dir: str | Path = "backtest",
    every: int = 20,
    n_boot: int = 1000,
    bootstrap_seed: int = 0,
    progress: bool = False,
    backend: Backend | None = None,
) -> Path:
    """Backtest a trained run and write its results (see the module docstring).

    Args:
        run_dir: The trained run (``runs/NAME``).
        data_spec: Source of the bars traded (``bundled:GOOG``, ``csv:FILE``...), or None for the
            run's own held-out test tasks.
        protocol: ``regime`` or ``rolling``.
        adapt_days: K (default: the run's ``train.adapt_days``).
        start: First date traded.
        end: Last date read.
        seeds: Seeds of the seeded strategies (``scratch``).
        out_dir: Output folder (created; an earlier backtest there is replaced).
        every: R, days between adaptations (rolling).
        n_boot: Bootstrap replicates.
        bootstrap_seed: Seed of the bootstrap's generator.
        progress: Show a progress bar.
        backend: Where the strategy x seed x market pieces run (default: this process).

    Returns:
        The output folder.
    """
    out = Path(out_dir)
    _check_out(out)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    run = TrainedRun.open(run_dir)
    bt = compute(
        run,
        data_spec,
        protocol,  # type: ignore[arg-type]
        adapt_days,
        every,
        start,
        end,
        seeds,
        progress=progress,
        backend=backend,
    )
    stats = statistics(bt, n_boot, np.random.default_rng(bootstrap_seed))
    recon = reconciliation(bt)
    doc = {
        "run": str(run_dir),
        "algo": run.algo,
        "data": data_spec or "run test tasks",
        "protocol": protocol,
        "adapt_days": bt.adapt_days,
        "horizon": bt.horizon if protocol == "regime" else None,
        "every": bt.every if protocol == "rolling" else None,
        "seeds": seeds,
        "hindsight": protocol == "regime",
        "note": HINDSIGHT_NOTE,
        "periods_per_year": PPY,
        "returns": "simple daily returns of account equity on active days; risk-free rate 0",
        "costs": bt.costs,
        "tasks": sum(len(m.segments) for m in bt.markets),
        "symbols": [m.symbol for m in bt.markets],
        "strategies": stats["figures"],
        "confidence_intervals": stats["intervals"],
        "p_beats": stats["p_beats"],
        "deflated_sharpe": stats["deflated"],
        "reconciliation": recon,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        from market_metarl.backtest.report import write_report

        (tmp / "metrics.json").write_text(json.dumps(_json_safe(doc), indent=2) + "\n")
        positions_frame(bt).to_csv(tmp / "positions.csv", index=False, float_format="%.12g")
        write_report(tmp, doc, bt)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
