"""Daily returns by strategy and asset: ``returns.csv``, per-asset and portfolio figures, paired intervals.

Every series here is the **simple daily net return** of a book's equity (after every cost) on its
active days (:mod:`~market_metarl.backtest.results`), dated by the day it is earned.

- Per asset: each market's book on its own.
- Equal-weight portfolio (several assets): each day, the mean of the assets' daily returns, on the
  days every asset's book is active (their common days): a portfolio rebalanced to equal weights
  every day, each asset's sleeve paying its own costs. Its traded weight is the mean of the
  assets'.
- Paired intervals (:func:`paired_intervals`): the paired circular block bootstrap
  (:func:`market_metarl.stats.paired_block_bootstrap`) of the strategy under test minus each of
  :data:`PAIRS`, on the same days: the asset's days with one asset, the portfolio's with several
  (and per asset as well).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from market_metarl.backtest.metrics import summary
from market_metarl.backtest.results import Backtest
from market_metarl.stats import paired_block_bootstrap
from market_metarl.types import TRADING_DAYS_PER_YEAR

PORTFOLIO = "portfolio"
"""The ``symbol`` of the equal-weight portfolio's rows in ``returns.csv``."""

PAIRS: tuple[tuple[str, str], ...] = (
    ("adapted", "zeroshot"),
    ("adapted", "pooled"),
    ("adapted", "vol_target"),
)
"""The paired comparisons reported (A minus B), when both strategies ran."""

PAIRED_METHOD = (
    "paired circular block bootstrap (Politis & Romano 1992) over days: blocks of block_days "
    "consecutive days wrapping around the end, the same resampled days for both strategies; "
    "percentile intervals of A minus B: the mean daily difference of simple net returns (per "
    "day) and the difference of annualised Sharpe ratios (risk-free rate 0)"
)


def by_symbol(bt: Backtest) -> dict[str, dict[str, tuple[pd.Series, pd.Series]]]:
    """``{symbol: {label: (daily returns, traded weight)}}`` on each book's active days."""
    out: dict[str, dict[str, tuple[pd.Series, pd.Series]]] = {}
    for acc in bt.accounts:
        days = acc.active
        out.setdefault(acc.market.symbol, {})[acc.label] = (
            acc.returns().loc[days],
            acc.traded.loc[days],
        )
    return out


def portfolio(bt: Backtest) -> dict[str, tuple[pd.Series, pd.Series]]:
    """``{label: (daily returns, traded weight)}`` of the equal-weight portfolio on common days."""
    per = by_symbol(bt)
    labels = list(dict.fromkeys(a.label for a in bt.accounts))
    out = {}
    for label in labels:
        parts = [books[label] for books in per.values() if label in books]
        common = parts[0][0].index
        for rets, _ in parts[1:]:
            common = common.intersection(rets.index)
        rets = pd.concat([r.loc[common] for r, _ in parts], axis=1).mean(axis=1)
        traded = pd.concat([t.loc[common] for _, t in parts], axis=1).mean(axis=1)
        out[label] = (rets, traded)
    return out


def returns_frame(bt: Backtest) -> pd.DataFrame:
    """``returns.csv``: ``date,strategy,symbol,return``, one row per book and active day.

    ``strategy`` is the book's label (``name``, or ``name/seedN``); with several assets, rows of
    symbol :data:`PORTFOLIO` hold the equal-weight portfolio.
    """
    rows = [
        (symbol, label, rets)
        for symbol, books in by_symbol(bt).items()
        for label, (rets, _) in books.items()
    ]
    if len(bt.markets) > 1:
        rows += [(PORTFOLIO, label, rets) for label, (rets, _) in portfolio(bt).items()]
    frames = [
        pd.DataFrame(
            {
                "date": pd.DatetimeIndex(rets.index).strftime("%Y-%m-%d"),
                "strategy": label,
                "symbol": symbol,
                "return": rets.to_numpy(),
            }
        )
        for symbol, label, rets in rows
    ]
    return pd.concat(frames, ignore_index=True)


def asset_figures(bt: Backtest) -> dict[str, Any]:
    """Figures per asset and of the equal-weight portfolio (only with several assets)."""
    if len(bt.markets) < 2:
        return {}
    ppy = TRADING_DAYS_PER_YEAR
    per = {
        symbol: {label: summary(r.to_numpy(), t.to_numpy(), ppy) for label, (r, t) in books.items()}
        for symbol, books in by_symbol(bt).items()
    }
    port = {
        label: summary(r.to_numpy(), t.to_numpy(), ppy) for label, (r, t) in portfolio(bt).items()
    }
    return {"by_symbol": per, PORTFOLIO: port}


def _pairs(
    books: dict[str, tuple[pd.Series, pd.Series]],
    block: int,
    n_boot: int,
    rng: np.random.Generator,
    level: float,
) -> dict[str, Any]:
    """The paired intervals of every pair of :data:`PAIRS` present in ``books``.

    Each pair draws from its own generator spawned from ``rng``, so its interval does not depend
    on which other pairs ran.
    """
    out: dict[str, Any] = {}
    for (a, b), gen in zip(PAIRS, rng.spawn(len(PAIRS)), strict=True):
        if a not in books or b not in books:
            continue
        ra, rb = books[a][0], books[b][0]
        common = ra.index.intersection(rb.index)
        name = f"{a} - {b}"
        if len(common) < max(2 * block, 2):
            out[name] = {"skipped": f"{len(common)} common day(s), under two blocks of {block}"}
            continue
        x, y = ra.loc[common].to_numpy(), rb.loc[common].to_numpy()
        out[name] = paired_block_bootstrap(
            x, y, gen, n_boot, block, level, TRADING_DAYS_PER_YEAR
        ).as_dict()
    return out


def paired_intervals(
    bt: Backtest, block: int, n_boot: int, rng: np.random.Generator, level: float = 0.95
) -> dict[str, Any]:
    """The headline comparisons: A minus B on the same days, by paired block bootstrap.

    With one asset, on its days; with several, on the equal-weight portfolio's days (headline)
    and per asset.
    """
    several = len(bt.markets) > 1
    headline = portfolio(bt) if several else next(iter(by_symbol(bt).values()))
    doc: dict[str, Any] = {
        "method": PAIRED_METHOD,
        "block_days": block,
        "n_boot": n_boot,
        "level": level,
        "series": "equal-weight portfolio" if several else bt.markets[0].symbol,
        "pairs": _pairs(headline, block, n_boot, rng, level),
    }
    if several:
        doc["by_symbol"] = {
            symbol: _pairs(books, block, n_boot, rng, level)
            for symbol, books in by_symbol(bt).items()
        }
    return doc
