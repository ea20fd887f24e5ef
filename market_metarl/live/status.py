"""The state of a paper account, read from its ledger alone (no run, no feed).

:func:`ledger_status` gives it as a dict, :func:`format_status` as a table for the terminal.
"""

from __future__ import annotations

import json
from typing import Any

from market_metarl.live.alpaca_schema import broker_row, last_reconciliation
from market_metarl.live.ledger import SCHEMA_VERSION, Account, EquityRow, Ledger
from market_metarl.live.portfolio_schema import account_symbols, decisions


def ledger_status(ledger: Ledger) -> dict[str, Any]:
    """Positions, equity, PnL against buy-and-hold, the last adaptation and the guardrail state.

    Keys: ``account``, ``last_step_date``, ``equity``, ``cash``, ``positions`` (symbol -> weight at
    the last close), ``shares``, ``initial_cash``, ``pnl``, ``total_return``,
    ``buy_and_hold_equity``, ``buy_and_hold_return``, ``excess_return``, ``pooled_shadow_equity``,
    ``last_step``, ``pending_orders``, ``last_adaptation``, ``guardrails``, ``schema`` (the
    ledger's schema ``version`` and its ``history``: creation and each migration, with times),
    ``broker`` (the broker's row, None for the simulated broker) and ``reconciliation`` (the last
    comparison of the broker's book with the ledger's, None for the simulated broker),
    ``symbols`` (each symbol and its feed, in order), ``allocation`` (the capital split rule of a
    multi-asset account, None for one symbol), ``shadow_books`` (per shadow book: its equity and
    return at the last close, the account's excess return over it) and ``last_decisions`` (a
    multi-asset account's per-symbol decisions of the last step: split, sleeve weights, target).
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
        "guardrails": _guard_info(ledger, account),
        "schema": _schema_info(ledger),
        **_portfolio_info(ledger, account, equity, mark),
    }


def _portfolio_info(
    ledger: Ledger, account: Account, equity: float, mark: EquityRow | None
) -> dict[str, Any]:
    """The status entries of the account's symbols and of its shadow books."""
    pairs = account_symbols(ledger.conn)
    last = ledger.last_step()
    initial = account.initial_cash
    books = {}
    for name, value in (
        ("pooled", mark.pooled_equity if mark else None),
        ("buy_and_hold", mark.benchmark_equity if mark else None),
    ):
        book = initial if value is None else value
        books[name] = {
            "equity": book,
            "return": book / initial - 1.0,
            "excess_return": (equity - book) / initial,
        }
    multi = len(pairs) > 1
    return {
        "symbols": [{"symbol": s, "feed": f} for s, f in pairs],
        "allocation": json.loads(account.settings).get("allocation") if multi else None,
        "shadow_books": books,
        "last_decisions": decisions(ledger.conn, last.isoformat()) if last and multi else [],
    }


def _guard_info(ledger: Ledger, account: Account) -> dict[str, Any]:
    """The ``guardrails`` entry of the status: the flags, the settings, the recent events."""
    killed, fallback = ledger.guard_state()
    return {
        "killed": killed,
        "fallback": fallback,
        "settings": json.loads(account.settings),
        "recent_events": [
            {"date": d, "kind": k, "detail": t} for d, k, t in ledger.events(limit=5)
        ],
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
    lines += _portfolio_lines(status)
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


def _portfolio_lines(status: dict[str, Any]) -> list[tuple[str, str]]:
    """A multi-asset account's lines: its split, shadow books and per-symbol decisions."""
    if not status.get("allocation"):
        return []
    lines = [("allocation", f"{status['allocation']} over {len(status['symbols'])} symbols")]
    for name, book in status["shadow_books"].items():
        lines.append(
            (
                f"shadow {name}",
                f"{book['equity']:,.2f} ({book['return']:+.2%}); account excess "
                f"{book['excess_return']:+.2%}",
            )
        )
    for d in status["last_decisions"]:
        target = "none" if d["target"] is None else f"{d['target']:+.4f}"
        lines.append(
            (
                f"decision {d['symbol']}",
                f"split {d['allocation']:.4f}  sleeve adapted {d['adapted_target']:+.4f} "
                f"pooled {d['pooled_target']:+.4f}  target {target}",
            )
        )
    return lines
