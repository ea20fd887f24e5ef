"""The Alpaca soak: one account, a simulated month of sessions on the fake Alpaca server, seeded
SIGKILLs of ``paper step`` and seeded 5xx/429 answers; then the counts and a reconciliation.

Each session ``D``: the fake's clock is 19:30 ET on ``D`` (opening orders accepted), ``paper step
--asof D`` runs in a child forked from ``tests/faults/fork_server.py``, and is run again until it
exits 0: after a SIGKILL at a seeded moment (uniform over an uninterrupted step's duration; a kill
that comes after the step ended is owed to the next session) or a failure (an injected error
that outlasted the retries). Then the open of the next session fills the opening orders.

Used by ``tests/live/test_alpaca_soak.py`` and ``benchmarks/alpaca_soak.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from live_helpers import check_invariants

FAULTS = Path(__file__).resolve().parents[1] / "faults"
WARM = f"""
import sys
sys.path.insert(0, {str(FAULTS)!r})
import fork_server
import alpaca.trading.client, alpaca.trading.requests, requests
import market_metarl.live.api, market_metarl.live.status, market_metarl.live.step
from market_metarl.data.sources import load_bars
from market_metarl.live.calendar import get_calendar
from market_metarl.live import alpaca
from market_metarl.meta.registry import algorithm_names, get_algorithm
for name in algorithm_names():
    get_algorithm(name)
get_calendar("XNYS").sessions("2019-01-02", "2019-01-31")
for symbol in sys.argv[1:]:
    load_bars("bundled:" + symbol)
fork_server.serve()
"""
"""``tests/faults/fork_server.py``'s loop, after warming what every ``paper step`` of an Alpaca
account reads (alpaca-py, the step, every algorithm, the calendar, the bundled bars), and only that:
not the backtest's libraries the fault tests warm (torch._dynamo, hmmlearn, matplotlib: tens of
seconds on a busy machine). A child then spends its time stepping."""


class Runner:
    """``market-metarl ARGV`` in children forked from one warm server; kills on request."""

    def __init__(self, cwd: Path, symbols: Sequence[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WARM, *symbols],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=cwd,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return line.strip()

    def run(self, argv: list[str], kill_after: float | None = None) -> tuple[int, float]:
        """Run ``argv`` (SIGKILL after ``kill_after`` s): its exit code and seconds."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        line, start = self._line(), time.perf_counter()
        if kill_after is not None:
            time.sleep(kill_after)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[1]), signal.SIGKILL)
        while not (line := self._line()).startswith("exit "):
            pass
        return int(line.split()[1]), time.perf_counter() - start

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@dataclass
class SoakReport:
    """What a soak did and found (``duplicates``, ``missing`` and ``differences`` must be 0)."""

    symbols: list[str]
    sessions: int = 0
    runs: int = 0
    kills: int = 0
    failed_runs: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    posts: int = 0
    orders_sent: int = 0
    orders_expired: int = 0
    duplicates: int = 0
    missing: int = 0
    steps: int = 0
    reconciliations: int = 0
    differences: int = 0
    max_difference: float = 0.0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        injected = ", ".join(f"{k}: {v}" for k, v in sorted(self.injected.items())) or "none"
        return [
            f"symbols {','.join(self.symbols)}: {self.sessions} sessions, {self.runs} runs of "
            f"paper step, {self.kills} SIGKILLs, {self.failed_runs} failed runs",
            f"injected errors ({sum(self.injected.values())}): {injected}",
            f"order POSTs {self.posts}, orders at the broker {self.orders_sent}, expired unsent "
            f"{self.orders_expired}, duplicates {self.duplicates}, missing {self.missing}",
            f"ledger steps {self.steps} (invariants hold), reconciliations "
            f"{self.reconciliations}, differences {self.differences} "
            f"(max {self.max_difference:.3g}), {self.seconds:.1f} s",
        ]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def run_session(
    runner: Runner, argv: list[str], kill: float | None, report: SoakReport, tries: int = 30
) -> tuple[bool, float]:
    """Run one session's step until it exits 0: whether ``kill`` landed, the last run's seconds."""
    landed = False
    for _ in range(tries):
        code, seconds = runner.run(argv, None if landed else kill)
        report.runs += 1
        if code == 0:
            return landed, seconds
        if code == -signal.SIGKILL:
            report.kills += 1
            landed = True
        else:
            report.failed_runs += 1
    raise AssertionError(f"{argv} did not succeed in {tries} runs")


def soak(
    db: Path,
    fake: Any,
    runner: Runner,
    days: Sequence[str],
    opens: dict[str, dict[str, float]],
    kills: int = 10,
    seed: int = 0,
) -> SoakReport:
    """Step ``db`` through ``days`` with ``kills`` seeded SIGKILLs; see the module docstring.

    Args:
        db: An Alpaca account's ledger (created on ``fake``; the fork server's environment
            points at ``fake``).
        fake: The fake Alpaca server (its chaos already set by the caller, if any).
        runner: The fork server the steps run in.
        days: The sessions, in order (ISO dates).
        opens: Open price of each symbol on each day (the day after the last one included).
        kills: SIGKILLs to deliver, at most one per session.
        seed: Seeds which sessions are killed and when (never the first; a kill comes within
            80 % of the quickest uninterrupted step so far, so a machine whose load drops
            rarely finishes a step before its kill).
    """
    rng, report, t0 = np.random.default_rng(seed), SoakReport(symbols=[]), time.perf_counter()
    report.symbols = sorted(opens[days[0]])
    fastest = 0.0  # the quickest uninterrupted step so far: a kill within it rarely misses
    for i, day in enumerate(days):
        fake.evening(day)
        # spread the kills left over the sessions left (a kill that missed stays owed)
        owed = min(1.0, (kills - report.kills) / max(len(days) - i, 1))
        kill = float(rng.uniform(0.0, 0.8 * fastest)) if i and rng.random() < owed else None
        argv = ["paper", "step", "--db", str(db), "--asof", day]
        landed, seconds = run_session(runner, argv, kill, report)
        if not landed:  # an interrupted step's last run is a resumed one: not a full step
            fastest = seconds if i == 0 or fastest == 0.0 else min(fastest, seconds)
        report.sessions += 1
        nxt = days[i + 1] if i + 1 < len(days) else None
        if nxt is not None:
            fake.open_day(nxt, opens[nxt])
    report.seconds = time.perf_counter() - t0
    return check(db, fake, report)


def check(db: Path, fake: Any, report: SoakReport) -> SoakReport:
    """The ledger's invariants, then the broker against the ledger, counted into ``report``.

    The ledger must pass :func:`live_helpers.check_invariants` (one symbol or several: each
    order one ``(day, symbol)`` of a step, under its deterministic client id). Then, at the
    broker: ``duplicates`` counts orders beyond one per client id or per symbol and evening
    (the session whose close decided it, from the order's creation time in New York), and
    orders the ledger did not send as they are (unknown client id, another Alpaca id, symbol or
    quantity); ``missing`` counts orders the ledger sent that the broker lacks and orders still
    only written ahead; ``differences`` counts reconciliations above 1e-9 of equity, symbols
    whose shares differ between the ledger and the broker at the end, and cash that differs by
    more than 1e-6 dollars.
    """
    report.steps = check_invariants(db)
    taken = fake.taken()
    report.posts, report.orders_sent, report.injected = fake.posts, len(taken), dict(fake.injected)
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT a.client_id, a.state, a.alpaca_id, a.symbol, a.qty, o.date FROM alpaca_orders "
            "a JOIN orders o ON o.client_id = a.client_id"
        ).fetchall()
        recs = [r[0] for r in conn.execute("SELECT difference FROM reconciliations")]
        shares = dict(conn.execute("SELECT symbol, shares FROM positions").fetchall())
        (cash,) = conn.execute("SELECT amount FROM cash").fetchone()
    finally:
        conn.close()
    sent = {r[0]: r for r in rows if r[1] == "sent"}
    report.orders_expired = sum(r[1] == "expired" for r in rows)
    per_id = Counter(o["client_order_id"] for o in taken)
    per_key = Counter((_session_of(o), o["symbol"]) for o in taken)  # the broker's own fields
    report.duplicates = sum(n - 1 for n in per_id.values()) + sum(n - 1 for n in per_key.values())
    report.duplicates += sum(not _as_sent(o, sent.get(o["client_order_id"])) for o in taken)
    report.missing = len(set(sent) - set(per_id)) + sum(r[1] == "intent" for r in rows)
    report.reconciliations = len(recs)
    report.differences = sum(d > 1e-9 for d in recs)
    report.max_difference = max(recs, default=0.0)
    symbols = set(shares) | set(fake.positions)
    report.differences += sum(shares.get(s, 0.0) != fake.positions.get(s, 0.0) for s in symbols)
    report.differences += abs(cash - fake.cash) > 1e-6  # dollars: the fills' sums, reordered
    return report


def _session_of(order: dict[str, Any]) -> str:
    """The New York date the broker's ``order`` was created on (an OPG order: its evening)."""
    from alpaca_fake import ET

    return dt.datetime.fromisoformat(order["created_at"]).astimezone(ET).date().isoformat()


def _as_sent(order: dict[str, Any], row: tuple[Any, ...] | None) -> bool:
    """Whether the broker's ``order`` is the one the ledger's ``alpaca_orders`` ``row`` sent."""
    if row is None:
        return False
    _, _, alpaca_id, symbol, qty, _ = row
    signed = float(order["qty"]) * (1.0 if order["side"] == "buy" else -1.0)
    return bool(order["id"] == alpaca_id and order["symbol"] == symbol and signed == qty)


def session_days(first: str, count: int) -> list[str]:
    """``count`` XNYS sessions from ``first``, ISO dates."""
    from market_metarl.live.calendar import get_calendar

    start = dt.date.fromisoformat(first)
    days = get_calendar("XNYS").sessions(start, start + dt.timedelta(days=2 * count + 10))
    return [d.date().isoformat() for d in days[:count]]


def open_prices(symbols: Sequence[str], days: Sequence[str]) -> dict[str, dict[str, float]]:
    """The bundled open price of each symbol on each of ``days`` (``soak``'s ``opens``)."""
    from market_metarl.data.sources import load_bars

    bars = {s: load_bars(f"bundled:{s}") for s in symbols}
    return {
        d: {s: float(bars[s]["open"].to_numpy()[bars[s].index.get_loc(d)]) for s in symbols}
        for d in days
    }
