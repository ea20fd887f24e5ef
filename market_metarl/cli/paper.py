"""``market-metarl paper init|step|run|status|reset|migrate``: the paper-trading commands.

Each handler turns its options into one call of :mod:`market_metarl.live.api` and prints what
comes back, as text or (``--json``) as one JSON object per line. The trading commands import torch
when they run; ``paper status``, ``paper reset`` and ``paper migrate`` do not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

from market_metarl.cli._common import (
    EXIT_OK,
    Parser,
    SubParsers,
    UsageError,
    finite_float,
    print_json,
)

if TYPE_CHECKING:
    from market_metarl.live.api import RunStart
    from market_metarl.live.step import StepResult

HELPS = {
    "init": "create the ledger of a paper account for a trained run and a feed",
    "step": "the daily step: adapt, decide, guard, submit, record (once per as-of date)",
    "run": "step once per trading day (replay: through --asof; --live: after each close), "
    "resume, stop on SIGINT/TERM",
    "status": "positions, equity, PnL against buy-and-hold, adaptation and guardrails",
    "reset": "clear the kill switch and the fallback to the pooled policy",
    "migrate": "bring a ledger written by an older market_metarl to this schema version",
}
"""The subcommands and their one-line help."""


def register(sub: SubParsers) -> None:
    """Add ``paper`` and its subcommands."""
    paper = sub.add_parser("paper", help="paper trading: adapt daily, trade, keep a ledger")
    paper_sub = paper.add_subparsers(dest="paper_command", required=True, parser_class=Parser)
    for name, text in HELPS.items():
        p = paper_sub.add_parser(name, help=text)
        p.add_argument("--db", required=True, help="ledger file (SQLite), e.g. paper/spy.db")
        if name in ("init", "step", "run"):
            need = name == "init"
            p.add_argument("--run", required=need, help="trained run directory, e.g. runs/NAME")
            p.add_argument(
                "--feed",
                required=need,
                help="yfinance:SPY, or bundled:SPY (replay); several, comma-separated "
                "(bundled:SPY,bundled:QQQ,...), make a multi-asset account",
            )
        if name in ("step", "run"):
            p.add_argument("--asof", help="as-of trading day YYYY-MM-DD (run: the last one)")
        if name == "run":
            p.add_argument("--start", help="first as-of day of an account not stepped yet")
            p.add_argument(
                "--every", type=finite_float, help="seconds between steps (default: daily)"
            )
            p.add_argument(
                "--live",
                action="store_true",
                help="run for real: wait for each session's close (exchange calendar), step, "
                "submit before the next open, catch up after a restart (live feeds only)",
            )
            p.add_argument(
                "--once", action="store_true", help="with --live: step the due sessions and exit"
            )
        if name == "init":
            p.add_argument("--cash", type=finite_float, help="initial cash (default: [paper] cash)")
            p.add_argument("--adapt-days", type=int, help="K (default: the run's adapt_days)")
            p.add_argument("--adapt-every", type=int, help="R (default: [paper] every, 20)")
            p.add_argument(
                "--allocation",
                choices=("equal", "inverse_vol"),
                help="capital split of a multi-asset account (several --feed sources, comma-"
                "separated): equal, or inverse_vol (trailing [paper] vol_window sessions; "
                "default: [paper] allocation, equal)",
            )
            _broker_options(p)
        if name == "migrate":
            p.add_argument("--no-backup", action="store_true", help="skip the <db>.v<N>.bak copy")
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
        p.set_defaults(handler=dispatch)


def _broker_options(p: argparse.ArgumentParser) -> None:
    """``paper init``'s broker options (the kind is stored with the account)."""
    p.add_argument(
        "--broker",
        choices=("sim", "alpaca"),
        default="sim",
        help="sim: the simulated paper broker (default); alpaca: Alpaca's paper API (alpaca-py, "
        "keys in APCA_API_KEY_ID / APCA_API_SECRET_KEY)",
    )
    p.add_argument(
        "--alpaca-url", help="Alpaca base URL (default: APCA_API_BASE_URL, else Alpaca's)"
    )
    p.add_argument("--alpaca-live", action="store_true", help="Alpaca's live account: REAL money")
    p.add_argument(
        "--i-know-this-is-real-money", action="store_true", help="confirms --alpaca-live"
    )


def dispatch(args: argparse.Namespace) -> int:
    """Dispatch ``paper SUBCOMMAND``."""
    sys.stdout.flush()
    return HANDLERS[args.paper_command](args)


def parse_date(text: str | None, what: str = "--asof") -> dt.date | None:
    """A ``YYYY-MM-DD`` option as a date (None when not given)."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what} must be a date like 2020-01-31, got {text!r}") from None


def _say(args: argparse.Namespace, text: str, obj: dict[str, Any]) -> None:
    if args.json:
        print_json(obj)
    else:
        print(text, flush=True)


def _print_step(args: argparse.Namespace, result: StepResult) -> None:
    if result.status != "stepped":
        text = f"{result.date or '-'}  {result.status}: {result.message}"
    else:
        target = "none" if result.target is None else f"{result.target:+.4f}"
        events = f"  events {','.join(result.events)}" if result.events else ""
        text = (
            f"{result.date}  target {target} ({result.policy}; block {result.adaptation_date})  "
            f"equity {result.equity:,.2f}  cash {result.cash:,.2f}  fills {result.fills}{events}"
        )
    _say(args, text, result.to_dict())


def _init(args: argparse.Namespace) -> int:
    from market_metarl.live.api import BrokerChoice, init_account

    broker = BrokerChoice(
        args.broker, args.alpaca_url, args.alpaca_live, args.i_know_this_is_real_money
    )
    account = init_account(
        args.db,
        args.run,
        args.feed,
        cash=args.cash,
        adapt_days=args.adapt_days,
        every=args.adapt_every,
        broker=broker,
        allocation=args.allocation,
    )
    _say(
        args,
        f"created {args.db}: account {account.account_id} trades {account.symbol} from "
        f"{account.feed} with {account.algo} (K={account.adapt_days}, R={account.every}), "
        f"cash {account.initial_cash:,.2f}, broker {args.broker}",
        {
            "db": str(args.db),
            "account_id": account.account_id,
            "symbol": account.symbol,
            "broker": args.broker,
        },
    )
    return EXIT_OK


def _step(args: argparse.Namespace) -> int:
    from market_metarl.live.api import step_account

    asof = parse_date(args.asof)
    result = step_account(args.db, asof=asof, run_path=args.run, feed_spec=args.feed)
    _print_step(args, result)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    import threading

    from market_metarl.live.api import run_account
    from market_metarl.live.loop import stop_on_signals

    until, start = parse_date(args.asof), parse_date(args.start, "--start")
    if args.every is not None and args.every < 0:
        raise UsageError(f"--every must be >= 0 seconds, got {args.every}")

    def on_start(at: RunStart) -> None:
        last = at.last_step
        _say(
            args,
            f"paper run: {args.db} ({at.symbol}, {at.feed}) resuming after {last or 'no step yet'}",
            {"status": "running", "last_step_date": str(last) if last else None},
        )

    stop = threading.Event()
    with stop_on_signals(stop):
        done = run_account(
            args.db,
            run_path=args.run,
            feed_spec=args.feed,
            until=until,
            start=start,
            every=args.every,
            stop=stop,
            on_start=on_start,
            on_step=lambda r: _print_step(args, r),
            live=args.live,
            once=args.once,
        )
    how, last = ("stopped by signal" if done.stopped else "done"), done.last_step
    _say(
        args,
        f"paper run: {how} after {done.steps} step(s); last step {last or '-'}",
        {"status": how, "steps": done.steps, "last_step_date": str(last) if last else None},
    )
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from market_metarl.live.api import account_status
    from market_metarl.live.status import format_status

    status = account_status(args.db)
    if args.json:
        print_json(status)
    else:
        print(format_status(status))
    return EXIT_OK


def _reset(args: argparse.Namespace) -> int:
    from market_metarl.live.api import reset_account

    was = reset_account(args.db)
    _say(args, f"guardrails reset (were: killed={was[0]}, fallback={was[1]})", {"was": was})
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    from market_metarl.live.migrations import migrate

    done = migrate(args.db, backup=not args.no_backup)
    if done.applied:
        steps = "; ".join(f"v{v}: {d}" for v, d in done.applied)
        text = f"migrated {args.db} from schema version {done.from_version} to {done.to_version}"
        text += f" ({steps}); copy of the old ledger: {done.backup or 'none (--no-backup)'}"
    else:
        text = f"{args.db} is at schema version {done.to_version} already; nothing to do"
    obj = {
        "db": str(args.db),
        "from_version": done.from_version,
        "to_version": done.to_version,
        "applied": [{"version": v, "description": d} for v, d in done.applied],
        "backup": str(done.backup) if done.backup else None,
    }
    _say(args, text, obj)
    return EXIT_OK


HANDLERS = {
    "init": _init,
    "step": _step,
    "run": _run,
    "status": _status,
    "reset": _reset,
    "migrate": _migrate,
}
"""The handler of each ``paper`` subcommand."""
