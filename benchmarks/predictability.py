"""What can a policy adapt to on daily bars? How well the first K days of a window predict the next H.

The measurement behind the real-data analysis (issue "Make adaptation pay on real markets"): for
every training asset of ``envs/real.toml`` (or ``--config``) over its ``[splits] train`` period
only, cut the daily log returns into non-overlapping blocks of K + H days; in each block the first
K days are the adaptation support, the next H days the period traded after adapting. Across all
blocks of all assets it reports, for K in ``--ks``:

- ``vol_corr``: correlation of the support's volatility with the next H days' (log std);
- ``mean_corr``: correlation of the support's mean return with the next H days' mean;
- ``same_sign``: how often the two means have the same sign (0.5 is a coin);
- ``acf_corr``: correlation of the support's lag-1 autocorrelation with the next H days';
- ``feature_vol_corr``: the same volatility correlation for the causal 20-day volatility read on
  the support's last day (what the observation's ``vol`` column, and ``vol_target`` sizing,
  already give every policy, adapted or not).

Each figure has a 95% interval from a bootstrap over blocks. Only training data is read; the
validation and test periods are untouched. The last line printed is one JSON object: ``config``,
``horizon``, ``assets``, and per K (``by_k``): ``blocks`` and each figure with its interval.

Usage: ``python benchmarks/predictability.py [--config envs/real.toml] [--ks 10,20,40,60,120]
[--horizon 60]``. It reads ``../shared/data/raw`` beside the checkout and stops with the missing
path when that is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.data.sources import load_bars
from market_metarl.meta.experiment import Experiment
from market_metarl.types import DataError

ROOT = Path(__file__).resolve().parents[1]
VOL_FEATURE_DAYS = 20
N_BOOT = 2000


def training_returns(exp: Experiment) -> dict[str, np.ndarray]:
    """Daily log returns of every training asset inside ``[splits] train`` (training data only)."""
    start, end = exp.tasks.splits.windows()["train"]
    out: dict[str, np.ndarray] = {}
    for asset in exp.tasks.data.universe().train:
        bars = load_bars(asset.source)
        close = bars["close"].loc[pd.Timestamp(start) : pd.Timestamp(end)].to_numpy(float)
        if len(close) > 2:
            out[asset.name] = np.diff(np.log(close))
    return out


def lag1(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of ``x`` (0 for a constant series)."""
    a, b = x[:-1] - x[:-1].mean(), x[1:] - x[1:].mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def blocks(returns: dict[str, np.ndarray], k: int, h: int) -> pd.DataFrame:
    """One row per non-overlapping (support K, next H) block of every asset, with its statistics."""
    rows = []
    for rets in returns.values():
        for s in range(max(VOL_FEATURE_DAYS - k, 0), len(rets) - k - h + 1, k + h):
            sup, nxt = rets[s : s + k], rets[s + k : s + k + h]
            feat = rets[
                s + k - VOL_FEATURE_DAYS : s + k
            ]  # the vol column on the support's last day
            if sup.std() == 0 or nxt.std() == 0 or feat.std() == 0:
                continue
            rows.append(
                {
                    "sup_vol": np.log(sup.std()),
                    "nxt_vol": np.log(nxt.std()),
                    "feat_vol": np.log(feat.std()),
                    "sup_mean": sup.mean(),
                    "nxt_mean": nxt.mean(),
                    "sup_acf": lag1(sup),
                    "nxt_acf": lag1(nxt),
                }
            )
    return pd.DataFrame(rows)


def figures(df: pd.DataFrame) -> dict[str, float]:
    """The five figures of one set of blocks."""
    return {
        "vol_corr": float(np.corrcoef(df["sup_vol"], df["nxt_vol"])[0, 1]),
        "mean_corr": float(np.corrcoef(df["sup_mean"], df["nxt_mean"])[0, 1]),
        "same_sign": float((np.sign(df["sup_mean"]) == np.sign(df["nxt_mean"])).mean()),
        "acf_corr": float(np.corrcoef(df["sup_acf"], df["nxt_acf"])[0, 1]),
        "feature_vol_corr": float(np.corrcoef(df["feat_vol"], df["nxt_vol"])[0, 1]),
    }


def with_intervals(df: pd.DataFrame, rng: np.random.Generator) -> dict[str, Any]:
    """Each figure and its 95% bootstrap interval over blocks."""
    point = figures(df)
    draws = [figures(df.iloc[rng.integers(0, len(df), len(df))]) for _ in range(N_BOOT)]
    out: dict[str, Any] = {"blocks": len(df)}
    for name, value in point.items():
        lo, hi = np.percentile([d[name] for d in draws], [2.5, 97.5])
        out[name] = [round(value, 3), round(float(lo), 3), round(float(hi), 3)]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "envs" / "real.toml"))
    p.add_argument("--ks", default="10,20,40,60,120", help="support lengths K, comma-separated")
    p.add_argument("--horizon", type=int, default=60, help="H: days traded after the support")
    args = p.parse_args(argv)
    try:
        returns = training_returns(Experiment.from_toml(args.config))
    except DataError as exc:
        sys.exit(f"error: {exc} (this benchmark reads ../shared/data/raw beside the checkout)")
    rng = np.random.default_rng(0)
    print(f"{len(returns)} training assets, [splits] train only; H = {args.horizon} days")
    print(f"{'K':>4} {'blocks':>6}  " + "  ".join(f"{n:>24}" for n in figures_names()))
    by_k: dict[str, Any] = {}
    for k in (int(x) for x in args.ks.split(",")):
        res = with_intervals(blocks(returns, k, args.horizon), rng)
        by_k[str(k)] = res
        cells = [f"{v[0]:6.2f} [{v[1]:5.2f}, {v[2]:5.2f}]" for n, v in res.items() if n != "blocks"]
        print(f"{k:>4} {res['blocks']:>6}  " + "  ".join(f"{c:>24}" for c in cells))
    print(
        json.dumps(
            {"config": args.config, "horizon": args.horizon, "assets": len(returns), "by_k": by_k}
        )
    )


def figures_names() -> list[str]:
    """The figures' names, in the order printed."""
    return ["vol_corr", "mean_corr", "same_sign", "acf_corr", "feature_vol_corr"]


if __name__ == "__main__":
    main()
