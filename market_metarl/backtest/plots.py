"""The backtest's PNGs: equity with regimes shaded, drawdowns, adaptation gain, reconciliation.

matplotlib is imported inside each function with the Agg backend forced (no display needed), and
every figure is closed after saving. Regime shades reuse :mod:`market_metarl.data.plotting`'s
colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_metarl.backtest.daily import portfolio
from market_metarl.backtest.metrics import drawdowns
from market_metarl.backtest.results import Backtest
from market_metarl.backtest.strategies import STRATEGIES, UNDER_TEST
from market_metarl.stats import sharpe
from market_metarl.types import TRADING_DAYS_PER_YEAR


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _curves(bt: Backtest) -> tuple[Any, dict[str, np.ndarray], list[tuple[int, int, str]]]:
    """The x values, growth of 1 per strategy (seed 0) and shaded spans ``(x0, x1, label)``.

    One market: x is the date and equity is the account's. Several: the equal-weight
    portfolio's growth on the assets' common days (x: the dates; no spans), or, when they share
    fewer than two days, x counts active days, the markets' active days pooled in order.
    """
    labels = [a.label for a in bt.accounts if a.seed == 0]
    labels = list(dict.fromkeys(labels))
    spans: list[tuple[int, int, str]] = []
    if len(bt.markets) == 1:
        curves = {}
        for acc in bt.accounts:
            if acc.seed == 0:
                curves[acc.label] = (acc.equity / acc.equity.iloc[0]).to_numpy()
        first = next(a for a in bt.accounts if a.seed == 0)
        x = pd.DatetimeIndex(first.equity.index)
        for seg, days in zip(first.market.segments, first.task_days, strict=True):
            a, b = x.searchsorted(days[0]) - 1, x.searchsorted(days[-1])
            spans.append((int(a), int(b), seg.label))
        return x, curves, spans
    port = portfolio(bt)
    if len(port[labels[0]][0]) >= 2:
        rets = {label: port[label][0] for label in labels}
        dates = pd.DatetimeIndex(rets[labels[0]].index)
        x = dates.insert(0, dates[0] - pd.Timedelta(days=1))
        growth = {
            k: np.concatenate([[1.0], np.cumprod(1.0 + r.to_numpy())]) for k, r in rets.items()
        }
        return x, growth, spans
    curves = {}
    for label in labels:
        pooled = np.concatenate(
            [acc.returns().loc[acc.active].to_numpy() for acc in bt.accounts if acc.label == label]
        )
        curves[label] = np.concatenate([[1.0], np.cumprod(1.0 + pooled)])
    pos = 0
    first_acc = [a for a in bt.accounts if a.label == labels[0]]
    for acc in first_acc:
        for seg, days in zip(acc.market.segments, acc.task_days, strict=True):
            spans.append((pos, pos + len(days), seg.label))
            pos += len(days)
    return np.arange(pos + 1), curves, spans


def _shade(axes: Sequence[Any], x: Any, spans: list[tuple[int, int, str]]) -> dict[str, str]:
    from market_metarl.data.plotting import _colors_for

    colors = _colors_for([s[2] for s in spans])
    for a, b, label in spans:
        for ax in axes:
            ax.axvspan(x[max(a, 0)], x[min(b, len(x) - 1)], color=colors[label], alpha=0.35, lw=0)
    return colors


def _draw_curves(
    ax: Any, ax_dd: Any, x: Any, curves: dict[str, np.ndarray], order: Sequence[str]
) -> None:
    """The emphasised strategies bold and in front, the others thin and faded behind them."""
    drawn = [label for label in order if label in curves]
    bold = [k for k in drawn if STRATEGIES[k.split("/")[0]].emphasis and "/" not in k]
    for label in [k for k in drawn if k not in bold] + bold:
        y = curves[label]
        strong = label in bold
        width = (2.4 if label == UNDER_TEST else 1.6) if strong else 0.8
        style = {"color": STRATEGIES[label.split("/")[0]].color, "alpha": 1.0 if strong else 0.45}
        ax.plot(x, y, lw=width, label=label, zorder=3 if strong else 2, **style)
        dd = np.concatenate([[0.0], drawdowns(y[1:] / y[:-1] - 1.0)])
        ax_dd.plot(x, dd, lw=width * 0.7, zorder=3 if strong else 2, **style)


def _legend(ax: Any, colors: dict[str, str], order: Sequence[str]) -> None:
    """Emphasised strategies first, then the others, then the regime shades."""
    from matplotlib.patches import Patch

    handles, names = ax.get_legend_handles_labels()
    by_name = dict(zip(names, handles, strict=True))
    bold = [k for k in order if k in by_name and STRATEGIES[k.split("/")[0]].emphasis]
    rest = [k for k in order if k in by_name and k not in bold]
    chosen = [by_name[k] for k in bold + rest]
    chosen += [Patch(facecolor=c, alpha=0.35, label=k) for k, c in colors.items()]
    ax.legend(handles=chosen, loc="upper left", ncol=6, fontsize=8, framealpha=0.9)


def plot_equity(bt: Backtest, path: Path, order: Sequence[str]) -> Path:
    """Equity (growth of 1) of every strategy with regimes shaded, and their drawdowns below.

    The strategies a reader compares first (:attr:`Strategy.emphasis`: adapted, zeroshot,
    pooled, buy-and-hold, vol_target) are bold; the others thin and faded.
    """
    plt = _plt()
    x, curves, spans = _curves(bt)
    fig, (ax, ax_dd) = plt.subplots(
        2, 1, figsize=(12, 6.5), dpi=110, sharex=True, height_ratios=(3, 1.4)
    )
    try:
        colors = _shade([ax, ax_dd], x, spans) if bt.protocol == "regime" else {}
        _draw_curves(ax, ax_dd, x, curves, order)
        ax.set_ylabel("growth of 1 (log scale)")
        ax.set_yscale("log")
        plain = plt.matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.grid(True, alpha=0.3)
        _legend(ax, colors, order)
        several = len(bt.markets) > 1
        where = bt.markets[0].symbol
        if several:
            where = (
                "equal-weight portfolio of " + ", ".join(m.symbol for m in bt.markets)
                if isinstance(x, pd.DatetimeIndex)
                else "tasks' trading days, pooled"
            )
        ax.set_title(f"Equity by strategy ({bt.protocol} protocol, {where})", loc="left")
        ax_dd.set_ylabel("drawdown")
        ax_dd.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax_dd.grid(True, alpha=0.3)
        if several and not isinstance(x, pd.DatetimeIndex):
            ax_dd.set_xlabel("trading day (active days of every task, symbol by symbol)")
        ax.margins(x=0)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def adaptation_gains(bt: Backtest) -> pd.DataFrame:
    """Per task: Sharpe of ``adapted`` after adaptation, zero-shot, and the gain (post - pre)."""
    rows = []
    for acc in bt.accounts:
        if acc.label != UNDER_TEST:
            continue
        pre_tasks = bt.zero_shot.get(acc.market.symbol, [])
        for i, (seg, post) in enumerate(zip(acc.market.segments, acc.task_returns(), strict=True)):
            pre = pre_tasks[i] if i < len(pre_tasks) else np.array([])
            rows.append(
                {
                    "symbol": acc.market.symbol,
                    "label": seg.label,
                    "start": acc.task_days[i][0].date().isoformat(),
                    "post_sharpe": sharpe(post, TRADING_DAYS_PER_YEAR),
                    "pre_sharpe": sharpe(pre, TRADING_DAYS_PER_YEAR),
                }
            )
    frame = pd.DataFrame(rows, columns=["symbol", "label", "start", "post_sharpe", "pre_sharpe"])
    frame["gain"] = frame["post_sharpe"] - frame["pre_sharpe"]
    return frame


def plot_gain(gains: pd.DataFrame, path: Path) -> Path:
    """Bar chart of the per-task adaptation gain (post minus pre Sharpe) of ``adapted``."""
    plt = _plt()
    from matplotlib.patches import Patch

    from market_metarl.data.plotting import _colors_for

    fig, ax = plt.subplots(figsize=(12, 3.8), dpi=110)
    try:
        g = gains["gain"].fillna(0.0).to_numpy()
        colors = _colors_for(list(gains["label"]))
        ax.bar(np.arange(len(g)), g, color=[colors[x] for x in gains["label"]], width=0.85)
        mean = float(np.nanmean(gains["gain"])) if len(gains) else float("nan")
        ax.axhline(0.0, color="black", lw=0.7)
        ax.axhline(mean, color="#d62728", lw=1.2, ls="--", label=f"mean gain {mean:+.2f}")
        handles = [Patch(facecolor=c, label=k) for k, c in colors.items()]
        handles += ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=8, ncol=6, loc="upper left")
        ax.set_ylabel("Sharpe after - before")
        ax.set_xlabel("task (symbol, then date order)")
        ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(
            "Adaptation gain per task: adapted minus the same policy zero-shot", loc="left"
        )
        ax.margins(x=0.01)
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_reconciliation(bt: Backtest, path: Path) -> Path:
    """Equity of one book in backtrader and in the env, and their daily relative differences."""
    plt = _plt()
    acc = bt.accounts[0]
    fig, (ax, ax_d) = plt.subplots(
        2, 1, figsize=(12, 5.5), dpi=110, sharex=True, height_ratios=(2, 1.5)
    )
    try:
        ax.plot(
            acc.env_equity.index,
            acc.env_equity.to_numpy(),
            lw=2.5,
            color="#9ecae1",
            label="env simulator",
        )
        ax.plot(
            acc.equity.index,
            acc.equity.to_numpy(),
            lw=0.9,
            color="#d62728",
            ls="--",
            label="backtrader (orders sized at the open)",
        )
        native = bt.native_equity
        ax.plot(
            native.index,
            native.to_numpy(),
            lw=0.8,
            color="#555555",
            alpha=0.8,
            label="backtrader order_target_percent (sized at the close)",
        )
        ax.set_ylabel("equity")
        ax.legend(fontsize=8, loc="upper left")
        ax.set_title(f"Reconciliation: {acc.label} on {acc.market.symbol}", loc="left")
        exact = np.abs(acc.equity.to_numpy() / acc.env_equity.to_numpy() - 1.0)
        nat = np.abs(
            native.reindex(acc.env_equity.index).to_numpy() / acc.env_equity.to_numpy() - 1
        )
        floor = 1e-17
        ax_d.semilogy(
            acc.equity.index, exact + floor, lw=0.9, color="#d62728", label="sized at open"
        )
        ax_d.semilogy(native.index, nat + floor, lw=0.9, color="#555555", label="sized at close")
        ax_d.axhline(1e-9, color="black", ls="--", lw=0.7, label="tolerance 1e-9")
        ax_d.set_ylabel("|E_bt / E_env - 1|")
        ax_d.legend(fontsize=8, loc="upper left", ncol=3)
        ax_d.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
