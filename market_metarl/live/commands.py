"""Handlers of ``market-metarl paper init|step|run|status|reset`` (the parser is in ``cli``).

Every handler returns the exit code; user-fixable problems raise
:class:`~market_metarl.types.MarketMetaRLError`, which the CLI prints as one ``error:`` line
(exit 2). Nothing is written on bad input: ``init`` validates before it creates the ledger, and a
step validates before its one transaction.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from market_metarl.live.ledger import Ledger
from market_metarl.live.settings import parse_date
from market_metarl.live.status import account_status, format_status
from market_metarl.types import ConfigError

if TYPE_CHECKING:  # the trading handlers import torch; `paper status` does not wait for it
    from market_metarl.live.step import StepResult


def _say(args: argparse.Namespace, text: str, obj: dict[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True) if args.json else text, flush=True)


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
    from market_metarl.live.account import init_account

    if args.run is None or args.feed is None:
        raise ConfigError("paper init needs --run RUN_DIR and --feed SOURCE")
    account = init_account(
        args.db, args.run, args.feed, args.cash, args.adapt_days, args.adapt_every
    )
    _say(
        args,
        f"created {args.db}: account {account.account_id} trades {account.symbol} from "
        f"{account.feed} with {account.algo} (K={account.adapt_days}, R={account.every}), "
        f"cash {account.initial_cash:,.2f}",
        {"db": str(args.db), "account_id": account.account_id, "symbol": account.symbol},
    )
    return 0


def _step(args: argparse.Namespace) -> int:
    from market_metarl.live.account import PaperSession
    from market_metarl.live.step import step

    asof = parse_date(args.asof) if args.asof else None
    with PaperSession.open(args.db, args.run, args.feed) as session:
        _print_step(args, step(session, asof))
    return 0


def _run(args: argparse.Namespace) -> int:
    from market_metarl.live.account import PaperSession
    from market_metarl.live.loop import run_loop, stop_on_signals

    until = parse_date(args.asof) if args.asof else None
    start = parse_date(args.start, "--start") if args.start else None
    if args.every is not None and args.every < 0:
        raise ConfigError(f"--every must be >= 0 seconds, got {args.every}")
    stop = threading.Event()
    with stop_on_signals(stop), PaperSession.open(args.db, args.run, args.feed) as session:
        last = session.ledger.last_step()
        _say(
            args,
            f"paper run: {args.db} ({session.account.symbol}, {session.feed.spec}) "
            f"resuming after {last or 'no step yet'}",
            {"status": "running", "last_step_date": str(last) if last else None},
        )
        taken = run_loop(
            session,
            until=until,
            start=start,
            every=args.every,
            stop=stop,
            on_step=lambda r: _print_step(args, r),
        )
        how = "stopped by signal" if stop.is_set() else "done"
        last = session.ledger.last_step()
        _say(
            args,
            f"paper run: {how} after {taken} step(s); last step {last or '-'}",
            {"status": how, "steps": taken, "last_step_date": str(last) if last else None},
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    with Ledger.open(args.db) as ledger:
        status = account_status(ledger)
    if args.json:
        print(json.dumps(status, sort_keys=True, default=str))
    else:
        print(format_status(status))
    return 0


def _reset(args: argparse.Namespace) -> int:
    from market_metarl.live.step import reset_guardrails

    with Ledger.open(args.db) as ledger:
        was = reset_guardrails(ledger)
    _say(args, f"guardrails reset (were: killed={was[0]}, fallback={was[1]})", {"was": was})
    return 0


HANDLERS = {"init": _init, "step": _step, "run": _run, "status": _status, "reset": _reset}


def run_command(args: argparse.Namespace) -> int:
    """Dispatch ``paper SUBCOMMAND``."""
    sys.stdout.flush()
    return HANDLERS[args.paper_command](args)
