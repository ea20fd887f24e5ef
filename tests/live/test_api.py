"""The live layer's typed entry points, and the task-state hash recorded at each adaptation."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
from live_helpers import K, R, check_invariants, sessions

from market_metarl.data.sources import load_bars
from market_metarl.live import api
from market_metarl.live.ledger import Ledger
from market_metarl.live.step import state_hash
from market_metarl.meta.protocol import adapt_at
from market_metarl.meta.run import TrainedRun

LIVE = Path(__file__).resolve().parents[2] / "market_metarl" / "live"
EMPTY = hashlib.sha256(b"").hexdigest()[:16]
"""The digest of no input at all (``e3b0c442...``): what a hash that reads nothing records."""


def test_no_live_module_imports_argparse() -> None:
    for path in sorted(LIVE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert "argparse" not in names, f"{path.name}:{node.lineno} imports argparse"


def test_the_entry_points_step_report_and_reset_an_account(maml_run: Path, tmp_path: Path) -> None:
    db = tmp_path / "api.db"
    account = api.init_account(db, maml_run, "bundled:SPY", cash=50_000.0)
    assert account.initial_cash == 50_000.0
    days = sessions("2019-04-01", "2019-04-12")
    first = api.step_account(db, asof=days[0].date())
    assert (first.status, first.date) == ("stepped", str(days[0].date()))
    started: list[api.RunStart] = []
    done = api.run_account(db, until=days[-1].date(), on_start=started.append)
    assert started[0].last_step == days[0].date() and started[0].symbol == "SPY"
    assert (done.stopped, done.steps, done.last_step) == (False, len(days) - 1, days[-1].date())
    assert check_invariants(db) == len(days)
    status = api.account_status(db)
    assert status["last_step_date"] == str(days[-1].date())
    assert api.reset_account(db) == (False, False)
    assert api.account_status(db)["guardrails"]["recent_events"][-1]["kind"] == "reset"


def test_pearl_records_the_hash_of_its_posterior(pearl_run: Path, tmp_path: Path) -> None:
    days = sessions("2019-01-02", "2019-02-28")  # R = 5: one adaptation a week
    db = tmp_path / "pearl.db"
    api.init_account(db, pearl_run, "bundled:SPY")
    api.run_account(db, start=days[0].date(), until=days[-1].date())
    with Ledger.open(db) as ledger:
        rows = ledger.conn.execute("SELECT date, params_hash FROM adaptations").fetchall()
    hashes = [h for _, h in rows]
    assert len(hashes) == -(-len(days) // R)
    assert EMPTY not in hashes
    assert len(set(hashes)) == len(hashes)  # a new support, a new posterior, a new hash

    # the hash is a function of the posterior: it moves when the posterior moves, and only then
    run = TrainedRun.open(pearl_run)
    agent = run.agent("adapted")
    view = run.market_view(load_bars("bundled:SPY"))
    agent.init()
    prior = state_hash(agent)
    first = view.row(days[0])
    adapt_at(agent, view.episode, first, K)
    assert state_hash(agent) == hashes[0] != prior
    mean = agent.task_state()["posterior_mean"]
    adapt_at(agent, view.episode, first + R, K)
    assert not np.array_equal(agent.task_state()["posterior_mean"], mean)
    assert state_hash(agent) == hashes[1]
    agent.init()
    assert state_hash(agent) == prior
