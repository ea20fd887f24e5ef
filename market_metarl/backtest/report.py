"""``report.html``: one self-contained page that shows whether adaptation helped.

Sections: the verdict (rank of ``adapted``, its gain over its own zero-shot behaviour, P(adapted
beats X), and the paired comparisons), the paired block-bootstrap intervals over days (adapted
minus zeroshot, pooled and vol_target: the headline), the equity plot (the main comparisons bold),
the table of every strategy (best Sharpe first, with task-bootstrap intervals), per-asset and
portfolio Sharpe ratios when several assets are traded, the deflated Sharpe ratio of the best
strategy, the adaptation gain per task, the reconciliation of backtrader with the env, and the
protocol with its hindsight note. PNGs are written next to it and embedded as base64, so the page
can be mailed alone.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from market_metarl.backtest.plots import (
    adaptation_gains,
    plot_equity,
    plot_gain,
    plot_reconciliation,
)
from market_metarl.backtest.results import Backtest
from market_metarl.backtest.strategies import UNDER_TEST

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 9px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
tr.adapted{background:#fde8e8;font-weight:600} .ci{color:#777;font-size:11px}
td.win{color:#1a7f37;font-weight:600} td.loss{color:#b42318;font-weight:600}
table.pairs td:nth-child(2),table.pairs th:nth-child(2){text-align:left}
table.pairs tr.headline{background:#fafafa;font-weight:600}
table.pairs tr.first td{border-top:1px solid #ddd}
.verdict{font-size:15px;padding:10px 14px;border-radius:6px;background:#f6f6f6}
.good{border-left:6px solid #2ca02c} .bad{border-left:6px solid #d62728}
.note{color:#555;font-size:13px} img{max-width:100%;border:1px solid #eee}
"""


def _f(x: Any, kind: str = "num") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if kind == "pct":
        return f"{100 * x:+.1f}%"
    if kind == "p":
        return f"{x:.2f}"
    return f"{x:+.2f}"


def _ci(ci: dict[str, Any] | None, kind: str = "num") -> str:
    if not ci:
        return ""
    return f'<br><span class="ci">[{_f(ci.get("low"), kind)}, {_f(ci.get("high"), kind)}]</span>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _table(doc: dict[str, Any]) -> tuple[str, list[str]]:
    figs, cis, beats = doc["strategies"], doc["confidence_intervals"], doc["p_beats"]
    order = sorted(
        figs, key=lambda k: -(figs[k]["sharpe"] if math.isfinite(figs[k]["sharpe"]) else -1e9)
    )
    head = (
        "<tr><th>strategy</th><th>Sharpe</th><th>annual return</th><th>max drawdown</th>"
        "<th>total return</th><th>annual vol</th><th>turnover / yr</th><th>hit rate</th>"
        "<th>days</th><th>P(adapted beats it)</th></tr>"
    )
    rows = []
    for name in order:
        f = figs[name]
        ci = cis.get(name, {})
        p = beats.get(name)
        p_cell = "–" if p is None else f"{p['point']:.2f}" + _ci(p, "p")
        cls = ' class="adapted"' if name == UNDER_TEST else ""
        rows.append(
            f"<tr{cls}><td>{html.escape(name)}</td>"
            f"<td>{_f(f['sharpe'])}{_ci(ci.get('sharpe'))}</td>"
            f"<td>{_f(f['annual_return'], 'pct')}{_ci(ci.get('annual_return'), 'pct')}</td>"
            f"<td>{_f(f['max_drawdown'], 'pct')}{_ci(ci.get('max_drawdown'), 'pct')}</td>"
            f"<td>{_f(f['total_return'], 'pct')}</td><td>{_f(f['annual_vol'], 'pct')}</td>"
            f"<td>{f['turnover']:.1f}</td><td>{_f(f['hit_rate'], 'pct')}</td>"
            f"<td>{int(f['n_days'])}</td><td>{p_cell}</td></tr>"
        )
    return "<table>" + head + "".join(rows) + "</table>", order


def _paired_sentence(doc: dict[str, Any]) -> str:
    """The paired comparisons in words (Sharpe difference and its interval)."""
    pairs = doc.get("paired_intervals", {}).get("pairs", {})
    parts = []
    for name, p in pairs.items():
        if "skipped" in p:
            continue
        iv = p["sharpe_diff"]
        words = _pair_verdict(name, iv)[1]
        parts.append(
            f"{html.escape(name)}: {_f(iv['point'])} Sharpe [{_f(iv['low'])}, {_f(iv['high'])}] "
            f"({words})"
        )
    return " Paired over the same days, " + "; ".join(parts) + "." if parts else ""


def _verdict(doc: dict[str, Any], order: list[str], gains: Any) -> str:
    rank = order.index(UNDER_TEST) + 1 if UNDER_TEST in order else 0
    n_tasks = len(gains)
    improved = int((gains["gain"] > 0).sum()) if n_tasks else 0
    mean_gain = float(gains["gain"].mean()) if n_tasks else float("nan")
    beats = doc["p_beats"]
    won = [k for k, v in beats.items() if v["low"] is not None and v["low"] > 0.5]
    lost = [k for k, v in beats.items() if v["high"] is not None and v["high"] < 0.5]
    helped = rank == 1 and not lost
    text = (
        f"<b>{'Adaptation helped' if helped else 'Adaptation did not clearly help'}.</b>"
        f"{_paired_sentence(doc)} "
        f"<code>adapted</code> ranks {rank} of {len(order)} by Sharpe. Against its own zero-shot "
        f"behaviour it gained {_f(mean_gain)} Sharpe per task on average ({improved} of {n_tasks} "
        "tasks improved). By task, "
        f"it beats {', '.join(won) or 'no baseline'} with P &gt; 0.5 across the whole interval"
        f"{'; it loses to ' + ', '.join(lost) if lost else ''}."
    )
    return f'<p class="verdict {"good" if helped else "bad"}">{text}</p>'


def _deflated(doc: dict[str, Any]) -> str:
    d = doc["deflated_sharpe"]
    if "best" not in d:
        return "<p>No strategy had a finite Sharpe ratio.</p>"
    return (
        f"<p>Best strategy by Sharpe: <b>{html.escape(d['best'])}</b> (Sharpe {_f(d['sharpe_annual'])} "
        f"annualised over {d['n_obs']} days). With {d['n_trials']} strategies tried, the Sharpe "
        f"expected from the best of as many unskilled ones is {_f(d['sr0_annual'])}; the "
        f"<b>deflated Sharpe ratio</b> (Bailey &amp; López de Prado 2014: the probability that the "
        f"true Sharpe exceeds that, given skew {d['skew']:.2f} and kurtosis {d['kurtosis']:.2f}) is "
        f"<b>{d['deflated_sharpe']:.3f}</b>.</p>"
    )


def _pair_verdict(name: str, iv: dict[str, Any]) -> tuple[str, str]:
    """A pair's verdict from its Sharpe-difference interval: (css class, words)."""
    a, b = name.split(" - ")
    low, high = iv.get("low"), iv.get("high")
    if low is not None and low > 0:
        return "win", f"{a} better"
    if high is not None and high < 0:
        return "loss", f"{b} better"
    return "", "not distinguishable"


def _pairs_rows(pairs: dict[str, Any], where: str, headline: bool) -> list[str]:
    """One row per pair; the first of a group opens it, headline rows are bold."""
    rows = []
    for i, (name, p) in enumerate(pairs.items()):
        row_cls = " ".join(c for c, on in (("headline", headline), ("first", i == 0)) if on)
        tr = f'<tr class="{row_cls}">' if row_cls else "<tr>"
        if "skipped" in p:
            rows.append(
                f"{tr}<td>{where}</td><td>{html.escape(name)}</td>"
                f'<td colspan="4">{html.escape(p["skipped"])}</td></tr>'
            )
            continue
        cls, words = _pair_verdict(name, p["sharpe_diff"])
        mean = p["mean_daily_diff"]
        bp = {k: None if mean[k] is None else 1e4 * mean[k] for k in ("point", "low", "high")}
        rows.append(
            f"{tr}<td>{where}</td><td>{html.escape(name)}</td>"
            f"<td>{_f(p['sharpe_diff']['point'])}{_ci(p['sharpe_diff'])}</td>"
            f"<td>{_f(bp['point'])}{_ci(bp)}</td><td>{p['n_days']}</td>"
            f'<td class="{cls}">{words}</td></tr>'
        )
    return rows


def _paired(doc: dict[str, Any]) -> str:
    """The headline table: paired block-bootstrap intervals over days."""
    d = doc["paired_intervals"]
    if not d["pairs"]:
        return "<p>No pair to compare (run adapted with zeroshot, pooled or vol_target).</p>"
    rows = _pairs_rows(d["pairs"], html.escape(d["series"]), True)
    for symbol, pairs in d.get("by_symbol", {}).items():
        rows += _pairs_rows(pairs, html.escape(symbol), False)
    head = (
        "<tr><th>days of</th><th>A - B</th><th>Sharpe difference</th>"
        "<th>mean daily difference (bp)</th><th>days</th><th>verdict (Sharpe)</th></tr>"
    )
    level = round(100 * d["level"])
    return (
        '<table class="pairs">' + head + "".join(rows) + "</table>"
        f'<p class="note">{level}% intervals from a paired circular block bootstrap over days '
        f"(Politis &amp; Romano 1992; blocks of {d['block_days']} days, {d['n_boot']} "
        "replicates): both strategies are evaluated on the same resampled days, so the market "
        "moves they share cancel and serial dependence within a block is kept. Differences of "
        "simple daily net returns (after costs); Sharpe ratios annualised, risk-free rate 0. "
        "A verdict needs the whole interval on one side of 0.</p>"
    )


def _assets(doc: dict[str, Any], order: list[str]) -> str:
    """Sharpe ratio of every strategy per asset and for the equal-weight portfolio."""
    if "by_symbol" not in doc:
        return ""
    symbols = list(doc["by_symbol"])
    cols = [*symbols, "portfolio"]
    tables = {**doc["by_symbol"], "portfolio": doc["portfolio"]}
    head = "<tr><th>strategy</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
    rows = []
    for name in order:
        cls = ' class="adapted"' if name == UNDER_TEST else ""
        cells = "".join(f"<td>{_f(tables[c].get(name, {}).get('sharpe'))}</td>" for c in cols)
        rows.append(f"<tr{cls}><td>{html.escape(name)}</td>{cells}</tr>")
    return (
        "<h2>Sharpe ratio per asset and of the equal-weight portfolio</h2><table>"
        + head
        + "".join(rows)
        + '</table><p class="note">The portfolio holds the assets in equal weights, rebalanced '
        "daily: each day the mean of the assets' daily net returns, on the days all are active."
        "</p>"
    )


def _baselines_note(doc: dict[str, Any]) -> str:
    """What the baselines are, with the run's settings."""
    b = doc.get("backtest_settings", {})
    if not b:
        return ""
    return (
        "<code>zeroshot</code>: the adapted policy never adapted. <code>vol_target</code>: long "
        f"{b['vol_target']:.0%} / realised vol ({b['vol_window']}-day std of daily log returns), "
        "capped at the max leverage; <code>tsmom</code>: sign of the "
        f"{b['tsmom_lookback']}-{b['tsmom_skip']} day return times that weight (Moskowitz, Ooi "
        "&amp; Pedersen 2012); <code>macd</code>: the Baz et al. (2015) trend signal times that "
        "weight; <code>hmm_switch</code>: that weight while a 2-state HMM of daily returns, "
        "fitted on the training split only and filtered forward, says calm. All pay the same "
        "costs."
    )


def _reconciliation(doc: dict[str, Any]) -> str:
    r = doc["reconciliation"]
    nat = r["native_order_target_percent"]
    status = "within" if r["within_tolerance"] else "OUTSIDE"
    scope = (
        ""
        if r["tolerance_applies"]
        else " (the tolerance is for weight-only costs; this run has a minimum fee or impact)"
    )
    return (
        f"<p>Every account was booked twice: by backtrader and by the env simulator. Largest daily "
        f"relative difference of equity: <b>{r['max_abs_rel_diff']:.1e}</b>, {status} the tolerance "
        f"{r['tolerance']:.0e}{scope}; orders rejected by backtrader: {r['rejected_orders']}. "
        f"For contrast, backtrader's native <code>order_target_percent</code> (shares sized on "
        f"the decision day's close, filled at the next open) differs by up to "
        f"{nat['max_rel_diff']:.1e} on {html.escape(nat['account'])} "
        f"({nat['rejected_orders']} of {nat['orders']} orders rejected for cash).</p>"
    )


def write_report(folder: Path, doc: dict[str, Any], bt: Backtest) -> Path:
    """Write the PNGs, ``adaptation_gain.csv`` and ``report.html`` into ``folder``."""
    table, order = _table(doc)
    equity_png = plot_equity(bt, folder / "equity.png", order)
    gains = adaptation_gains(bt)
    gains.to_csv(folder / "adaptation_gain.csv", index=False)
    gain_png = plot_gain(gains, folder / "adaptation_gain.png")
    recon_png = plot_reconciliation(bt, folder / "reconciliation.png")
    proto = (
        f"adapt on the first K={doc['adapt_days']} days of each regime, trade the next "
        f"H={doc['horizon']} days"
        if doc["protocol"] == "regime"
        else f"every R={doc['every']} days adapt on the last K={doc['adapt_days']} days and trade "
        "the next R (deployable: nothing known in hindsight)"
    )
    costs = ", ".join(f"{k}={v:g}" for k, v in doc["costs"].items())
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Backtest: {html.escape(doc["run"])}</title><style>{CSS}</style></head><body>
<h1>Backtest of {html.escape(doc["run"])} ({html.escape(doc["algo"])})</h1>
<p class="note">Data: {html.escape(doc["data"])} · symbols: {html.escape(", ".join(doc["symbols"]))}
· {doc["tasks"]} tasks · protocol <b>{doc["protocol"]}</b>: {proto} · seeds {doc["seeds"]}
· costs: {html.escape(costs)}</p>
{_verdict(doc, order, gains)}
<h2>Adapted against zero-shot, pooled and vol_target, day by day (headline)</h2>
{_paired(doc)}
<h2>Equity and drawdowns</h2>
{_img(equity_png, "equity curves")}
<h2>Strategies, best Sharpe first</h2>
{table}
<p class="note">Simple daily returns of account equity on the days each strategy traded (pooled
over tasks and symbols), {doc["periods_per_year"]} periods a year, risk-free rate 0. Brackets:
95% stratified percentile bootstrap over tasks (by symbol) and seeds, tasks resampled as if
independent. P(adapted beats it): share of tasks on which <code>adapted</code> has the higher
Sharpe (paired by task), with its interval. {_baselines_note(doc)}</p>
{_assets(doc, order)}
<h2>Deflated Sharpe ratio</h2>
{_deflated(doc)}
<h2>Adaptation gain per task</h2>
{_img(gain_png, "adaptation gain per task")}
<h2>Reconciliation: backtrader vs the env</h2>
{_reconciliation(doc)}
{_img(recon_png, "reconciliation")}
<h2>Protocol</h2>
<p>{html.escape(doc["note"])}</p>
<p class="note">Decisions are made after each close from bars up to that close and filled at the
next open (backtrader market orders); positions.csv holds every target weight and the equity at
each close, returns.csv every daily net return counted here.</p>
</body></html>
"""
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
