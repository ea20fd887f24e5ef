"""The state of a paper account, read from its ledger alone (no run, no feed).

:func:`ledger_status` gives it as a dict, :func:`format_status` as a table for the terminal.
"""

from __future__ import annotations

import json
from typing import Any

from market_metarl.live.alpaca_schema import broker_row, last_reconciliation
from market_metarl.live.ledger import SCHEMA_VERSION, Account, Ledger


def ledger_status(ledger: Ledger) -> dict[str, Any]:
    """Positions, equity, PnL against buy-and-hold, the last adaptation and the guardrail state.

    Keys: ``account``, ``last_step_date``, ``equity``, ``cash``, ``positions`` (symbol -> weight at
    the last close), ``shares``, ``initial_cash``, ``pnl``, ``total_return``,
    ``buy_and_hold_equity``, ``buy_and_hold_return``, ``excess_return``, ``pooled_shadow_equity``,
    ``last_step``, ``pending_orders``, ``last_adaptation``, ``guardrails``, ``schema`` (the
    ledger's schema ``version`` and its ``history``: creation and each migration, with times),
    ``broker`` (the broker's row, None for the simulated broker) and ``reconciliation`` (the last
    comparison of the broker's book with the ledger's, None for the simulated broker).
    """
    account = ledger.account()
    last = ledger.last_step()
    rows = ledger.equity_rows(limit=1)
    mark = rows[-1] if rows else None
    cash = mark.cash if mark else ledger.cash()
    equity = mark.equity if mark else ledger.cash()
    weights: dict[str, float] = {}
    if mark is not None:
        for symbol in ledger.positions():
            w = ledger.weight_on(mark.date, symbol)
            weights[symbol] = 0.0 if w is None else w
    bh = mark.benchmark_equity if mark and mark.benchmark_equity else account.initial_cash
    killed, fallback = ledger.guard_state()
    total = equity / account.initial_cash - 1.0
    bh_return = bh / account.initial_cash - 1.0
    return {
        "account": _account_info(account),
        "last_step_date": last.isoformat() if last else None,
        "last_mark_date": mark.date if mark else None,
        "equity": equity,
        "cash": cash,
        "positions": weights,
        "shares": ledger.positions(),
        "initial_cash": account.initial_cash,
        "pnl": equity - account.initial_cash,
        "total_return": total,
        "buy_and_hold_equity": bh,
        "buy_and_hold_return": bh_return,
        "excess_return": total - bh_return,
        "pooled_shadow_equity": mark.pooled_equity if mark else account.initial_cash,
        "last_step": ledger.step_row(last.isoformat()) if last else None,
        "pending_orders": [
            {"client_id": c, "date": d, "symbol": s, "target_weight": w}
            for c, d, s, w in ledger.pending_orders()
        ],
        "last_adaptation": ledger.last_adaptation(),
        "broker": broker_row(ledger.conn),
        "reconciliation": last_reconciliation(ledger.conn),
        "guardrails": {
            "killed": killed,
            "fallback": fallback,
            "settings": json.loads(account.settings),
            "recent_events": [
                {"date": d, "kind": k, "detail": t} for d, k, t in ledger.events(limit=5)
            ],
        },
        "schema": _schema_info(ledger),
    }


def _schema_info(ledger: Ledger) -> dict[str, Any]:
    """The ``schema`` entry of the status: version, creation and migrations."""
    history = [
        {"version": v, "description": d, "applied_at": t} for v, d, t in ledger.schema_history()
    ]
    return {"version": SCHEMA_VERSION, "history": history}


def _account_info(account: Account) -> dict[str, Any]:
    """The ``account`` entry of the status."""
    return {
        "id": account.account_id,
        "symbol": account.symbol,
        "run": account.run_path,
        "algo": account.algo,
        "feed": account.feed,
        "created": account.created,
        "origin": account.origin,
        "adapt_days": account.adapt_days,
        "every": account.every,
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as an aligned two-column table."""
    acc = status["account"]
    lines = [
        ("account", f"{acc['id']}  {acc['symbol']}  {acc['algo']}  run {acc['run']}"),
        ("feed", acc["feed"]),
        ("rolling", f"adapt on K={acc['adapt_days']} days every R={acc['every']} days"),
        ("origin", acc["origin"] or "-"),
        ("last step", status["last_step_date"] or "- (not stepped yet)"),
        ("equity", f"{status['equity']:,.2f}"),
        ("cash", f"{status['cash']:,.2f}"),
    ]
    for symbol, weight in status["positions"].items():
        lines.append(
            (f"position {symbol}", f"weight {weight:+.4f}  shares {status['shares'][symbol]:,.4f}")
        )
    lines += [
        ("PnL", f"{status['pnl']:+,.2f} ({status['total_return']:+.2%})"),
        (
            "buy-and-hold",
            f"{status['buy_and_hold_equity']:,.2f} ({status['buy_and_hold_return']:+.2%}); "
            f"excess {status['excess_return']:+.2%}",
        ),
        ("pooled shadow", f"{status['pooled_shadow_equity']:,.2f}"),
    ]
    step = status["last_step"]
    if step:
        target = "none" if step["target"] is None else f"{step['target']:+.4f}"
        lines.append(("last decision", f"target {target} ({step['policy']})"))
    for order in status["pending_orders"]:
        lines.append(
            ("pending order", f"{order['client_id']} target {order['target_weight']:+.4f}")
        )
    adaptation = status["last_adaptation"]
    if adaptation:
        lines.append(
            (
                "last adaptation",
                f"{adaptation['date']} on {adaptation['support_start']}..{adaptation['support_end']}"
                f" (K={adaptation['adapt_days']}) hash {adaptation['params_hash']}",
            )
        )
    lines += _broker_lines(status)
    guard = status["guardrails"]
    state = "KILLED (run `paper reset`)" if guard["killed"] else "active"
    if guard["fallback"]:
        state += ", fallen back to the pooled policy"
    lines.append(("guardrails", state))
    for event in guard["recent_events"]:
        lines.append(("event", f"{event['date']} {event['kind']} {event['detail']}"))
    history = ", ".join(f"v{h['version']} {h['applied_at']}" for h in status["schema"]["history"])
    lines.append(("ledger schema", f"version {status['schema']['version']} ({history})"))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)


def _broker_lines(status: dict[str, Any]) -> list[tuple[str, str]]:
    """The broker's lines of the status table (none for the simulated broker)."""
    broker = status.get("broker")
    if not broker:
        return []
    kind = "paper" if broker["paper"] else "LIVE (real money)"
    lines = [("broker", f"{broker['kind']} {kind} account {broker['account_number']}")]
    rec = status.get("reconciliation")
    if rec:
        tolerance = status["guardrails"]["settings"].get("reconcile_tolerance", 0.0)
        verdict = "agree" if rec["difference"] <= tolerance else "DIFFER"
        lines.append(
            (
                "reconciliation",
                f"{rec['date']} {verdict} ({rec['difference']:.4%} of equity): ledger "
                f"{rec['ledger_shares']} cash {rec['ledger_cash']:,.2f}; broker "
                f"{rec['broker_shares']} cash {rec['broker_cash']:,.2f}",
            )
        )
    return lines
