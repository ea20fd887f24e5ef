"""``report.html``: one self-contained page that shows whether adaptation helped.

Sections: the verdict (rank of ``adapted``, its gain over its own zero-shot behaviour, P(adapted
beats X)), the headline table (best Sharpe first, with bootstrap intervals), the deflated Sharpe
ratio of the best strategy, the plots, the reconciliation of backtrader with the env, and the
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
        f"<b>{'Adaptation helped' if helped else 'Adaptation did not clearly help'}.</b> "
        f"<code>adapted</code> ranks {rank} of {len(order)} by Sharpe. Against its own zero-shot "
        f"behaviour it gained {_f(mean_gain)} Sharpe per task on average ({improved} of {n_tasks} "
        "tasks improved). "
        f"It beats {', '.join(won) or 'no baseline'} with P &gt; 0.5 across the whole interval"
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
<h2>Strategies, best Sharpe first</h2>
{table}
<p class="note">Simple daily returns of account equity on the days each strategy traded (pooled
over tasks and symbols), {doc["periods_per_year"]} periods a year, risk-free rate 0. Brackets:
95% stratified percentile bootstrap over tasks (by symbol) and seeds. P(adapted beats it): share of
tasks on which <code>adapted</code> has the higher Sharpe (paired by task), with its interval.</p>
<h2>Deflated Sharpe ratio</h2>
{_deflated(doc)}
<h2>Equity and drawdowns</h2>
{_img(equity_png, "equity curves")}
<h2>Adaptation gain per task</h2>
{_img(gain_png, "adaptation gain per task")}
<h2>Reconciliation: backtrader vs the env</h2>
{_reconciliation(doc)}
{_img(recon_png, "reconciliation")}
<h2>Protocol</h2>
<p>{html.escape(doc["note"])}</p>
<p class="note">Decisions are made after each close from bars up to that close and filled at the
next open (backtrader market orders); positions.csv holds every target weight and the equity at
each close.</p>
</body></html>
"""
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
