"""Real-data adaptation benchmark: does adapting from a few days pay on real assets, net of costs?

The instrument the project judges every model change with (issues "The instrument for real-data
adaptation" and "Make adaptation pay on real markets"). It reads ``envs/real.toml`` (or
``--config``), whose universe lives in ``../shared/data/raw`` (it stops with a clear message when
that is missing).

Protocol (X-Trend's splits, Wood et al. 2023/24):

- meta-train on the training assets up to 2014 (``[splits] train``); choose every setting on
  validation (``[splits] val``, 2015 to 2017-11): each ``--algo`` x ``--grid`` combination is
  trained with ``--val-seeds`` seeds (default: all ``--seeds``, the same runs then tested) and
  scored by the equal-weight portfolio Sharpe of ``adapted`` over every validation asset; the
  best is kept; the test split is touched once, for it alone;
- test (2018 to the end of the data): **few-shot** = the training assets in the test period;
  **zero-shot** = ``[data] heldout_symbols``, never trained on (their near-clones kept out of
  training; the largest correlation of each with a training asset is printed);
- the rolling protocol paper trading runs: every ``every`` days the agent is reset and adapts on
  the last K days, then trades each day (decision after the close of day t on bars <= t, filled
  at the open of t+1) through the env simulator with the config's costs (the backtest proves the
  simulator equals backtrader to 1e-12);
- ``--seeds`` seeds; each learned strategy's daily returns are averaged over seeds per day (an
  equal-weight ensemble of the seeds' books), then over assets (equal-weight portfolio).

Strategies, all with the same costs: ``adapted``, ``zeroshot`` (the same agent, never adapted),
``pooled`` (its twin: the same network trained on every task, no context), ``finetune`` (pooled plus
gradient steps on the K days), ``buy_and_hold``, ``vol_target`` (long, scaled to a volatility
target), ``tsmom`` (12-1 month time-series momentum), ``macd`` (Baz et al.'s trend signal at three
time scales) and ``hmm_switch`` (a 2-state HMM risk-on/off switch fitted on training data only).

Statistics: equal-weight portfolio and per-asset Sharpe (simple daily returns, 252 days a year,
risk-free 0); a paired circular block bootstrap over days (block ``--block`` >= 20) of the daily
differences adapted - zeroshot, adapted - pooled and adapted - vol_target (mean in bp a day and
Sharpe difference, 95% intervals) with the smallest Sharpe difference each can detect (80% power,
5% two-sided: 2.8 bootstrap standard errors); per-seed portfolio Sharpes; the deflated Sharpe
(Bailey and Lopez de Prado) of the best-of-validation choice given the number of combinations.

Usage::

    python benchmarks/real_adaptation.py [--config envs/real.toml] [--algo maml,rl2] [--seeds 5]
        [--val-seeds 5] [--grid train.maml.inner_lr=0.01,0.05] [--every 20] [--block 20]
        [--workers 2] [--workdir DIR] [--quick] [--validation-only] [--chosen-in LOG]
        [--splits few_shot,zero_shot]

``--chosen-in LOG`` skips the validation phase for one ``--algo`` x ``--grid`` combination chosen
on validation by an earlier (``--validation-only``) run whose log is named (and recorded in the
JSON), so an ablation and its one test run need not score validation twice.

The last line printed is one JSON object: ``config``, ``algo`` (the chosen one), ``candidates``
(every algorithm x grid combination tried on validation), ``grid``, ``chosen`` (settings),
``seeds``, ``adapt_days``, ``every``, ``block``, ``costs``, ``validation`` (``trials``: settings
and Sharpe of each combination; ``deflated_sharpe``), ``zero_shot_nearest`` (asset ->
[training asset, correlation]), and per split (``few_shot``, ``zero_shot``): ``assets``, ``days``,
``ew_sharpe`` and ``ew_sharpe_ci`` (strategy -> value / [low, high]), ``per_asset_sharpe``
(strategy -> asset -> value), ``per_seed_ew_sharpe`` (learned strategy -> list), ``paired``
(comparison -> ``mean_bp``, ``mean_bp_ci``, ``sharpe_diff``, ``sharpe_diff_ci``, ``mde_sharpe``);
then ``seconds``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
from market_metarl.config import read_toml
from market_metarl.data.sources import load_bars
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.run import TrainedRun
from market_metarl.meta.rundir import read_run_json, run_shapes
from market_metarl.meta.sweep import combinations, parse_grid, with_settings
from market_metarl.meta.trainer import train
from market_metarl.stats import (
    circular_block_indices,
    deflated_sharpe,
    moments,
    paired_block_bootstrap,
    sharpe,
)
from market_metarl.types import DataError

ROOT = Path(__file__).resolve().parents[1]
PPY = 252
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("adapted", "zeroshot"),
    ("adapted", "pooled"),
    ("adapted", "vol_target"),
)
"""The paired daily differences reported (first minus second)."""


@dataclass(frozen=True)
class Universe:
    """The benchmark's assets: bars by symbol, the training (few-shot) and held-out (zero-shot) sets,
    and the config's periods."""

    assets: dict[str, PanelAsset]
    few_shot: list[str]
    zero_shot: list[str]
    train: Period
    val: Period
    test: Period

    @classmethod
    def load(cls, exp: Experiment) -> Universe:
        """Read every symbol of the config's ``[data]`` once.

        Raises:
            DataError: A source is missing (``../shared/data/raw`` not beside the checkout) or bad.
        """
        data, windows = exp.tasks.data, exp.tasks.splits.windows()
        if "val" not in windows:
            raise DataError("the benchmark chooses settings on [splits] val; the config has none")
        expanded = data.universe()
        assets: dict[str, PanelAsset] = {}
        for asset in (*expanded.train, *expanded.heldout):
            try:
                assets[asset.name] = PanelAsset(asset.name, load_bars(asset.source))
            except DataError as exc:
                raise DataError(
                    f"{exc}. The real-data benchmark reads ../shared/data/raw beside the "
                    "checkout (see envs/real.toml)"
                ) from None
        names = {
            "few": [a.name for a in expanded.train],
            "zero": [a.name for a in expanded.heldout],
        }
        periods = {k: Period(*v) for k, v in windows.items()}
        return cls(
            assets, names["few"], names["zero"], periods["train"], periods["val"], periods["test"]
        )

    def describe(self) -> str:
        """One paragraph: how many assets of each kind, and the periods."""
        return (
            f"universe: {len(self.few_shot)} training (few-shot) assets, {len(self.zero_shot)} "
            f"held-out (zero-shot) assets: {', '.join(self.zero_shot)}; train {self.train.start}.."
            f"{self.train.end}, val {self.val.start}..{self.val.end}, test {self.test.start}.."
            f"{self.test.end}"
        )

    def subset(self, few_shot: Sequence[str], zero_shot: Sequence[str]) -> Universe:
        """The same periods on fewer assets (a smoke run)."""
        keep = {n: self.assets[n] for n in [*few_shot, *zero_shot]}
        return Universe(keep, list(few_shot), list(zero_shot), self.train, self.val, self.test)

    def panel(self, names: Sequence[str]) -> list[PanelAsset]:
        """The assets named, in order."""
        return [self.assets[n] for n in names]


def nearest_training_assets(universe: Universe) -> dict[str, tuple[str, float]]:
    """Each held-out asset's training asset of largest absolute daily-return correlation, over the
    training period (training data only)."""
    lo, hi = pd.Timestamp(universe.train.start), pd.Timestamp(universe.train.end)
    rets = {n: np.log(a.bars["close"]).diff().loc[lo:hi] for n, a in universe.assets.items()}
    frame = pd.DataFrame(rets)
    out = {}
    for z in universe.zero_shot:
        corr = frame[universe.few_shot].corrwith(frame[z], drop=True).abs()
        corr = corr[frame[universe.few_shot].notna().mul(frame[z].notna(), axis=0).sum() >= 250]
        out[z] = (str(corr.idxmax()), float(corr.max())) if len(corr) else ("-", float("nan"))
    return out


def _train_one(job: tuple[Experiment, str, int, str]) -> str:
    """Train (or resume, or find finished) one seed's run; its directory."""
    import torch

    torch.set_num_threads(1)
    exp, algo, seed, out = job
    train(exp, algo, out, seed=seed, resume=(Path(out) / "run.json").exists())
    return out


def train_seeds(
    exp: Experiment, algo: str, seeds: Sequence[int], workdir: Path, workers: int
) -> list[Path]:
    """One trained run per seed under ``workdir`` (finished runs are reused), ``workers`` at once."""
    return train_many([(exp, algo, workdir)], seeds, workers)[0]


def train_many(
    setups: Sequence[tuple[Experiment, str, Path]], seeds: Sequence[int], workers: int
) -> list[list[Path]]:
    """Every setup's runs for ``seeds``, all trained in one pool (one list of runs per setup)."""
    jobs = [
        (exp, algo, seed, str(where / f"seed{seed}"))
        for exp, algo, where in setups
        for seed in seeds
    ]
    done = [Path(p) for p in _map(_train_one, jobs, workers)]
    n = len(seeds)
    return [done[i * n : (i + 1) * n] for i in range(len(setups))]


def _map(fn: Any, jobs: list[Any], workers: int) -> list[Any]:
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        return list(pool.map(fn, jobs))


def _open(exp: Experiment, run_dir: Path) -> TrainedRun:
    """A trained run opened on the experiment already built (no task set rebuilt)."""
    return TrainedRun(run_dir, read_run_json(run_dir), exp, run_shapes(run_dir))


def _eval_one(job: tuple[Experiment, Path, list[PanelAsset], Period, int, tuple[str, ...]]) -> Any:
    import torch

    torch.set_num_threads(1)
    exp, run_dir, assets, period, every, strategies = job
    return learned_panel(_open(exp, run_dir), assets, period, every, strategies)


def learned_returns(
    exp: Experiment,
    runs: Sequence[Path],
    assets: list[PanelAsset],
    period: Period,
    every: int,
    strategies: tuple[str, ...],
    workers: int,
) -> list[dict[tuple[str, str], pd.Series]]:
    """Per seed: ``{(strategy, symbol): daily returns}`` of the learned strategies.

    The work is cut into seed x asset-chunk pieces so every worker has one.
    """
    n_chunks = max(1, min(len(assets), workers // max(1, len(runs))))
    chunks = [assets[i::n_chunks] for i in range(n_chunks)]
    jobs = [(exp, run, chunk, period, every, strategies) for run in runs for chunk in chunks]
    results = _map(_eval_one, jobs, workers)
    per_seed = []
    for i in range(len(runs)):
        merged: dict[tuple[str, str], pd.Series] = {}
        for part in results[i * n_chunks : (i + 1) * n_chunks]:
            merged.update(part)
        per_seed.append(merged)
    return per_seed


def ew_sharpe(returns: pd.Series) -> float:
    """Annualised Sharpe of daily simple returns (252 days, risk-free 0)."""
    return float(sharpe(returns.to_numpy(), PPY))


def choose_on_validation(
    exp: Experiment, runs: Sequence[Path], universe: Universe, every: int, workers: int
) -> dict[str, Any]:
    """Validation score of one combination: the equal-weight portfolio Sharpe of ``adapted``
    (seed-averaged) over every asset with validation data, and that portfolio's daily returns;
    ``zeroshot`` and ``pooled`` beside it (what adapting adds on validation, for ablations)."""
    assets = universe.panel([*universe.few_shot, *universe.zero_shot])
    names = ("adapted", "zeroshot", "pooled")
    per_seed = learned_returns(exp, runs, assets, universe.val, every, names, workers)
    books = _seed_books(per_seed)
    ports = {n: equal_weight({y: r for (s, y), r in books.items() if s == n}) for n in names}
    portfolio = ports["adapted"]
    return {
        "sharpe": round(ew_sharpe(portfolio), 4),
        "zeroshot": round(ew_sharpe(ports["zeroshot"].loc[portfolio.index]), 4),
        "pooled": round(ew_sharpe(ports["pooled"].loc[portfolio.index]), 4),
        "days": len(portfolio),
        "daily": list(portfolio),
    }


def _seed_books(
    per_seed: list[dict[tuple[str, str], pd.Series]],
) -> dict[tuple[str, str], pd.Series]:
    keys = per_seed[0].keys()
    return {k: seed_average([seed[k] for seed in per_seed]) for k in keys}


def sharpe_interval(
    returns: pd.Series, block: int, n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    """95% circular block bootstrap interval of a series' annualised Sharpe ratio."""
    x = returns.to_numpy(dtype=np.float64)
    days = circular_block_indices(rng, len(x), block, n_boot)
    rows = x[days]
    sd = rows.std(axis=1, ddof=1)
    values = rows.mean(axis=1) / np.where(sd < 1e-15, np.nan, sd) * PPY**0.5
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def paired(a: pd.Series, b: pd.Series, block: int, n_boot: int, rng: np.random.Generator) -> dict:
    """Paired block bootstrap of A - B on their common days: bp a day, Sharpe difference, MDE."""
    x, y = a.align(b, join="inner")
    diff = paired_block_bootstrap(x.to_numpy(), y.to_numpy(), rng, n_boot, block)
    m, d = diff.mean_diff, diff.sharpe_diff
    se = (d.high - d.low) / (2 * 1.96)
    return {
        "mean_bp": round(m.point * 1e4, 3),
        "mean_bp_ci": [round(m.low * 1e4, 3), round(m.high * 1e4, 3)],
        "sharpe_diff": round(d.point, 4),
        "sharpe_diff_ci": [round(d.low, 4), round(d.high, 4)],
        "mde_sharpe": round(2.8 * se, 3),
        "days": diff.n_days,
    }


def evaluate_split(
    exp: Experiment,
    runs: Sequence[Path],
    universe: Universe,
    names: Sequence[str],
    period: Period,
    every: int,
    block: int,
    n_boot: int,
    rng_seed: int,
    workers: int,
) -> dict[str, Any]:
    """Every strategy on the named assets over ``period``: the split's figures (module docstring)."""
    assets = universe.panel(names)
    per_seed = learned_returns(exp, runs, assets, period, every, LEARNED, workers)
    books = _seed_books(per_seed)
    books.update(rule_panel(exp, assets, period, universe.train.end))
    symbols = sorted({sym for _, sym in books})
    strategies = [*LEARNED, *RULE_BASELINES]
    ports = {
        s: equal_weight({y: books[s, y] for y in symbols if (s, y) in books}) for s in strategies
    }
    common = ports[strategies[0]].index
    for r in ports.values():
        common = common.intersection(r.index)
    ports = {s: r.loc[common] for s, r in ports.items()}
    rng = np.random.default_rng(rng_seed)
    per_seed_ew = {
        s: [round(ew_sharpe(equal_weight({y: b[s, y] for y in symbols if (s, y) in b}).loc[common]), 4)
            for b in per_seed]
        for s in LEARNED
    }  # fmt: skip
    return {
        "assets": symbols,
        "days": len(common),
        "first_day": str(common[0].date()) if len(common) else None,
        "last_day": str(common[-1].date()) if len(common) else None,
        "ew_sharpe": {s: round(ew_sharpe(r), 4) for s, r in ports.items()},
        "ew_sharpe_ci": {s: sharpe_interval(r, block, n_boot, rng) for s, r in ports.items()},
        "per_asset_sharpe": {
            s: {y: round(ew_sharpe(books[s, y]), 4) for y in symbols if (s, y) in books}
            for s in strategies
        },
        "per_seed_ew_sharpe": per_seed_ew,
        "paired": {
            f"{a}-{b}": paired(ports[a], ports[b], block, n_boot, rng) for a, b in COMPARISONS
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "envs" / "real.toml"))
    p.add_argument(
        "--algo", default=None, help="algorithm(s), comma-separated (chosen on validation)"
    )
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--val-seeds", type=int, default=None, help="default: --seeds (runs reused)")
    p.add_argument("--grid", nargs="*", default=[], help="settings to choose from on validation")
    p.add_argument("--every", type=int, default=20, help="R: days between adaptations")
    p.add_argument("--block", type=int, default=20, help="block length of the bootstrap (days)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--workdir", default=None, help="keep trained runs here (reused on reruns)")
    p.add_argument("--quick", action="store_true", help="tiny budgets and few assets: a smoke run")
    p.add_argument(
        "--validation-only",
        action="store_true",
        help="stop after the validation table (ablations: the test split stays untouched)",
    )
    p.add_argument(
        "--chosen-in",
        default=None,
        help="skip validation: the one --algo x --grid combination was chosen on validation by "
        "the earlier run whose log is named here (recorded in the JSON)",
    )
    p.add_argument(
        "--splits",
        default="few_shot,zero_shot",
        help="test splits to score (default both); one alone finishes a test run whose other "
        "half was scored already, on the same kept runs (--workdir)",
    )
    args = p.parse_args(argv)
    args.splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not args.splits or set(args.splits) - {"few_shot", "zero_shot"}:
        p.error("--splits takes few_shot, zero_shot or both, comma-separated")
    if args.chosen_in and args.validation_only:
        p.error("--chosen-in skips validation; --validation-only stops after it")
    if args.block < 20:
        p.error("--block must be >= 20 days (returns are autocorrelated in volatility)")
    args.val_seeds = args.seeds if args.val_seeds is None else args.val_seeds
    if args.seeds < 1 or args.val_seeds < 1 or args.val_seeds > args.seeds:
        p.error("need 1 <= --val-seeds <= --seeds")
    return args


def quick_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A smoke-run version of a config: tiny training budgets (the universe is cut after loading)."""
    cfg = dict(cfg)
    train = dict(cfg["train"])
    train["iterations"] = 6
    for table in ("maml", "rl2", "pooled", "pearl", "model_based", "rl2_ppo"):
        train[table] = {**dict(train.get(table, {})), "iterations": 6}
    cfg["train"] = train
    return cfg


def print_split(name: str, result: dict[str, Any]) -> None:
    """The split's tables: portfolio Sharpe per strategy, paired differences, per seed."""
    print(f"\n{name}: {len(result['assets'])} assets, {result['days']} days")
    print(f"{'strategy':<13} {'EW Sharpe':>9} {'95% CI':>17} {'median asset':>13}")
    for s, v in result["ew_sharpe"].items():
        lo, hi = result["ew_sharpe_ci"][s]
        med = float(np.nanmedian(list(result["per_asset_sharpe"][s].values())))
        print(f"{s:<13} {v:>9.3f} {lo:>8.3f}..{hi:<8.3f} {med:>13.3f}")
    print(
        f"{'paired (daily)':<22} {'bp/day':>7} {'95% CI':>17} {'dSharpe':>8} {'95% CI':>17} {'MDE':>6}"
    )
    for c, v in result["paired"].items():
        (a, b), (c_lo, c_hi) = v["mean_bp_ci"], v["sharpe_diff_ci"]
        print(
            f"{c:<22} {v['mean_bp']:>7.2f} {a:>8.2f}..{b:<8.2f} {v['sharpe_diff']:>8.3f} "
            f"{c_lo:>8.3f}..{c_hi:<8.3f} {v['mde_sharpe']:>6.2f}"
        )
    for s, values in result["per_seed_ew_sharpe"].items():
        print(f"  per seed {s}: " + " ".join(f"{x:.2f}" for x in values))


def main(argv: list[str] | None = None) -> None:
    """Run the protocol and print the tables, then one JSON object."""
    t0 = time.perf_counter()
    args = parse_args(argv)
    cfg = read_toml(args.config)
    if args.quick:
        cfg = quick_config(cfg)
    algos = (args.algo or str(cfg.get("train", {}).get("algo", "maml"))).split(",")
    grid = parse_grid(args.grid)
    candidates = [(a, c) for a in algos for c in (combinations(grid) or [{}])]
    workdir = Path(args.workdir) if args.workdir else Path("/tmp") / "real_adaptation"
    base = Experiment.from_config(cfg)  # the task set takes seconds: built once per settings
    universe = Universe.load(base)
    if args.quick:
        universe = universe.subset(
            universe.few_shot[:4] + universe.few_shot[-2:], universe.zero_shot[:2]
        )
    print(universe.describe(), flush=True)
    nearest = nearest_training_assets(universe)
    for asset, (other, corr) in nearest.items():
        print(f"  zero-shot {asset}: nearest training asset {other} (|corr| {corr:.2f})")

    # validation: every (algorithm, settings) with val-seeds seeds; the best by adapted's EW Sharpe
    if args.chosen_in and len(candidates) != 1:
        raise SystemExit("--chosen-in needs exactly one --algo x --grid combination")
    setups = [
        (Experiment.from_config(with_settings(cfg, c)) if c else base, a, workdir / f"{a}-combo{i}")
        for i, (a, c) in enumerate(candidates)
    ]
    if args.chosen_in:  # chosen earlier; the test split is still touched once, here
        best, deflated, trials = 0, {"chosen_in": args.chosen_in}, []
        print(f"chosen on validation in {args.chosen_in}: {candidates[0]}", flush=True)
    else:
        best, deflated, trials = validate(setups, candidates, universe, args)
    if args.validation_only:
        print(json.dumps({"candidates": [f"{a} {c}" for a, c in candidates], "trials": trials,
                          "deflated_sharpe": deflated, "seconds": round(time.perf_counter() - t0, 1)},
                         default=_json_default))  # fmt: skip
        return
    test_phase(args, setups, candidates, best, trials, deflated, universe, nearest, t0)


def validate(
    setups: list[tuple[Experiment, str, Path]],
    candidates: list[tuple[str, dict[str, Any]]],
    universe: Universe,
    args: argparse.Namespace,
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Train and score every candidate on validation; the best one's index, its DSR, the trials."""
    val_runs = train_many(setups, range(args.val_seeds), args.workers)
    trials = []
    for (exp, algo, _), (_, settings), runs in zip(setups, candidates, val_runs, strict=True):
        score = choose_on_validation(exp, runs, universe, args.every, args.workers)
        trials.append({"algo": algo, "settings": settings, **score})
        print(
            f"validation {algo} {settings or ''}: adapted EW Sharpe {score['sharpe']:.3f} "
            f"(never adapted {score['zeroshot']:.3f}, pooled twin {score['pooled']:.3f})"
        )
    best, deflated = pick_best(trials)
    algo, chosen = candidates[best]
    print(f"chosen on validation: {algo} {chosen or ''}; deflated Sharpe {deflated}", flush=True)
    return best, deflated, trials


def test_phase(
    args: argparse.Namespace,
    setups: list[tuple[Experiment, str, Path]],
    candidates: list[tuple[str, dict[str, Any]]],
    best: int,
    trials: list[dict[str, Any]],
    deflated: dict[str, Any],
    universe: Universe,
    nearest: dict[str, tuple[str, float]],
    t0: float,
) -> None:
    """Test, once: the chosen candidate with every seed (its validation seeds reused)."""
    algo, chosen = candidates[best]
    exp, _, where = setups[best]
    runs = train_seeds(exp, algo, range(args.seeds), where, args.workers)
    out: dict[str, Any] = {}
    for split, names in (("few_shot", universe.few_shot), ("zero_shot", universe.zero_shot)):
        if split not in args.splits:
            continue
        result = evaluate_split(
            exp, runs, universe, names, universe.test, args.every, args.block, args.n_boot, 0,
            args.workers,
        )  # fmt: skip
        print_split(split, result)
        out[split] = result
    doc = {
        "config": str(args.config),
        "algo": algo,
        "candidates": [f"{a} {c}" for a, c in candidates],
        "grid": args.grid,
        "chosen": chosen,
        "seeds": args.seeds,
        "adapt_days": exp.train.adapt_days,
        "every": args.every,
        "block": args.block,
        "strategies": [*LEARNED, *RULE_BASELINES],
        "costs": {k: float(v) for k, v in vars(exp.tasks.costs).items()},
        "validation": {"trials": trials, "deflated_sharpe": deflated},
        "zero_shot_nearest": {a: [o, round(c, 3)] for a, (o, c) in nearest.items()},
        **out,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(doc, default=_json_default))


def pick_best(trials: list[dict[str, Any]]) -> tuple[int, dict[str, float]]:
    """The best trial by validation Sharpe, and the deflated Sharpe ratio of that choice.

    The deflated Sharpe ratio (Bailey and Lopez de Prado 2014) is the probability that the chosen
    combination's true per-day Sharpe exceeds the expected maximum of ``len(trials)`` unskilled
    trials with the trials' observed Sharpe variance.
    """
    daily = [np.asarray(t.pop("daily"), dtype=np.float64) for t in trials]
    per_day = np.array([moments(d)[0] for d in daily])
    best = int(np.nanargmax([t["sharpe"] for t in trials]))
    sr, skew, kurt = moments(daily[best])
    variance = float(np.nanvar(per_day, ddof=1)) if len(trials) > 1 else 0.0
    dsr = deflated_sharpe(sr, len(daily[best]), len(trials), variance, skew, kurt)
    return best, {"trials": len(trials), "sharpe": round(sr * PPY**0.5, 4), "dsr": round(dsr, 4)}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    raise TypeError(f"not JSON: {obj!r}")


if __name__ == "__main__":
    main()
