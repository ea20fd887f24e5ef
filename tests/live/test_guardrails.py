"""Guardrails: clipping, the kill switch, the fallback to the pooled policy, every event recorded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from live_helpers import check_invariants, cli, sessions

from market_metarl.live.account import PaperSession, init_account
from market_metarl.live.guardrails import decide, drawdown, lag
from market_metarl.live.ledger import Ledger
from market_metarl.live.settings import PaperConfig, paper_config
from market_metarl.live.step import step
from market_metarl.types import ConfigError

OPEN = PaperConfig(max_gross=10, max_turnover=10, max_drawdown=1.0, fallback=False)


def test_clips_and_their_events() -> None:
    cfg = PaperConfig(max_gross=0.5, max_turnover=0.3, max_drawdown=1.0, fallback=False)
    d = decide(cfg, False, False, 0.9, 0.1, 0.0, [1.0], [1.0], 1.0)
    assert d.target == pytest.approx(0.3) and d.policy == "adapted"
    assert [e.kind for e in d.events] == ["gross_clip", "turnover_clip"]
    d = decide(cfg, False, False, -0.9, 0.1, -0.4, [1.0], [1.0], 1.0)
    assert d.target == pytest.approx(-0.5) and [e.kind for e in d.events] == ["gross_clip"]
    d = decide(OPEN, False, False, 0.9, 0.1, 0.0, [1.0], [1.0], 1.0)
    assert d.target == 0.9 and d.events == ()


def test_kill_switch_flattens_then_halts() -> None:
    cfg = PaperConfig(max_drawdown=0.1, fallback=False)
    d = decide(cfg, False, False, 0.5, 0.1, 0.5, [100.0, 89.0], [100.0, 100.0], 100.0)
    assert (d.target, d.policy, d.killed) == (0.0, "flat", True)
    assert d.events[0].kind == "kill_switch" and d.events[0].detail["drawdown"] == pytest.approx(
        0.11
    )
    d = decide(cfg, True, False, 0.5, 0.1, 0.0, [89.0], [100.0], 100.0)
    assert (d.target, d.policy, d.killed) == (None, "halted", True)
    assert drawdown(90.0, 100.0) == pytest.approx(0.1) and drawdown(110.0, 100.0) == 0.0


def test_fallback_when_adapted_lags_the_pooled_shadow() -> None:
    cfg = PaperConfig(fallback_window=3, fallback_lag=0.02, max_gross=10, max_turnover=10)
    mine, shadow = [100.0, 99.0, 98.0, 97.0], [100.0, 100.0, 100.5, 101.0]
    assert lag(mine, shadow, 3) == pytest.approx(np.log(0.97) - np.log(1.01))
    assert lag(mine[:3], shadow[:3], 3) is None
    d = decide(cfg, False, False, 0.7, -0.2, 0.0, mine, shadow, 100.0)
    assert (d.target, d.policy, d.fallback) == (-0.2, "pooled", True)
    assert d.events[0].kind == "fallback"
    d = decide(cfg, False, True, 0.7, -0.2, 0.0, shadow, shadow, 101.0)  # sticky until reset
    assert (d.policy, d.events) == ("pooled", ())


def test_paper_table_is_strict() -> None:
    assert paper_config({}) == PaperConfig()
    assert paper_config({"paper": {"max_gross": 2}}).max_gross == 2.0
    with pytest.raises(ConfigError, match="valid keys of \\[paper\\]"):
        paper_config({"paper": {"max_grosss": 2}})
    with pytest.raises(ConfigError, match="max_drawdown"):
        PaperConfig(max_drawdown=0.0)
    cfg = PaperConfig().resolved(adapt_days=12)
    assert (cfg.adapt_days, cfg.every) == (12, 20)


def run_days(db: Path, start: str, end: str) -> None:
    with PaperSession.open(db) as session:
        for day in sessions(start, end):
            step(session, day.date())


def test_kill_switch_in_the_ledger_until_reset(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "kill.db"
    # shorted through the Covid rebound: a 1% drawdown trips the switch
    init_account(db, maml_run, "bundled:SPY", settings={"max_drawdown": 0.01, "fallback": False})
    run_days(db, "2020-03-02", "2020-04-30")
    with Ledger.open(db) as ledger:
        steps = ledger.conn.execute(
            "SELECT date, policy, target FROM steps ORDER BY date"
        ).fetchall()
        events = ledger.conn.execute("SELECT date, kind FROM guardrail_events").fetchall()
        assert ledger.guard_state() == (True, False)
        kill = next(i for i, s in enumerate(steps) if s[1] == "flat")
        assert steps[kill][2] == 0.0
        assert all(s[1] == "halted" and s[2] is None for s in steps[kill + 1 :])
        assert len(steps) - kill > 2
        assert ledger.positions()["SPY"] == pytest.approx(0.0, abs=1e-12)  # flattened
        assert ("kill_switch" in {k for _, k in events}) and events[0][0] == steps[kill][0]
        assert sum(k == "halted" for _, k in events) == len(steps) - kill - 1
    check_invariants(db)
    code, out, _ = cli(capsys, "paper", "status", "--db", str(db))
    assert "KILLED" in out
    code, out, _ = cli(capsys, "paper", "reset", "--db", str(db))
    assert code == 0 and "killed=True" in out
    with PaperSession.open(db) as session:
        result = step(session, dt.date(2020, 5, 1))
    assert result.policy in ("adapted", "flat") and result.target is not None


def test_fallback_and_gross_clip_in_the_ledger(maml_run: Path, tmp_path: Path) -> None:
    db = tmp_path / "fallback.db"
    settings = {"fallback": True, "fallback_window": 2, "fallback_lag": 1e-4, "max_gross": 0.2}
    init_account(db, maml_run, "bundled:SPY", settings=settings)
    run_days(db, "2019-01-02", "2019-03-29")
    with Ledger.open(db) as ledger:
        rows = ledger.conn.execute(
            "SELECT policy, target, adapted_target, pooled_target FROM steps ORDER BY date"
        ).fetchall()
        kinds = [k for (k,) in ledger.conn.execute("SELECT kind FROM guardrail_events")]
        assert ledger.guard_state() == (False, True)
    assert all(abs(t) <= 0.2 + 1e-12 for _, t, _, _ in rows)
    assert "gross_clip" in kinds and kinds.count("fallback") == 1
    switched = next(i for i, r in enumerate(rows) if r[0] == "pooled")
    assert all(r[0] == "adapted" for r in rows[:switched])
    assert all(r[0] == "pooled" for r in rows[switched:])
    for _, target, _, pooled in rows[switched:]:
        assert target == pytest.approx(float(np.clip(pooled, -0.2, 0.2)))
    check_invariants(db)


def test_account_guardrails_cap_each_symbol_then_the_whole_account() -> None:
    from market_metarl.live.guardrails import decide_account

    cfg = PaperConfig(max_gross=1.0, max_turnover=10, max_drawdown=1.0, fallback=False)
    held = {"A": 0.0, "B": 0.0, "C": 0.0}
    d = decide_account(
        cfg, False, False, {"A": 1.2, "B": 0.3, "C": -0.3}, held, held, [1.0], [1.0], 1.0
    )
    assert d.policy == "adapted" and d.targets is not None
    # A is cut to 1.0 on its own; then the gross 1.6 is scaled to 1.0 across the account
    assert d.targets == pytest.approx({"A": 1.0 / 1.6, "B": 0.3 / 1.6, "C": -0.3 / 1.6})
    assert sum(abs(w) for w in d.targets.values()) == pytest.approx(1.0)
    kinds = [(e.kind, e.detail.get("symbol")) for e in d.events]
    assert kinds == [("gross_clip", "A"), ("account_gross_clip", None)]
    # turnover: the changes are scaled, the held weights kept
    cfg = PaperConfig(max_gross=10, max_turnover=0.4, max_drawdown=1.0, fallback=False)
    d = decide_account(
        cfg, False, False, {"A": 0.5, "B": 0.1}, {}, {"A": 0.1, "B": 0.1}, [1.0], [1.0], 1.0
    )
    assert d.targets == pytest.approx({"A": 0.5, "B": 0.1})
    d = decide_account(
        cfg, False, False, {"A": 0.5, "B": -0.3}, {}, {"A": 0.1, "B": 0.1}, [1.0], [1.0], 1.0
    )
    assert d.targets == pytest.approx({"A": 0.1 + 0.2, "B": 0.1 - 0.2})
    assert [e.kind for e in d.events] == ["account_turnover_clip"]


def test_account_kill_switch_and_fallback_act_on_the_whole_account() -> None:
    from market_metarl.live.guardrails import decide_account

    adapted, pooled, held = {"A": 0.5, "B": 0.5}, {"A": 0.1, "B": 0.2}, {"A": 0.5, "B": 0.5}
    cfg = PaperConfig(max_drawdown=0.1, fallback=False)
    d = decide_account(cfg, False, False, adapted, pooled, held, [100.0, 89.0], [1.0, 1.0], 100.0)
    assert (d.targets, d.policy, d.killed) == ({"A": 0.0, "B": 0.0}, "flat", True)
    assert [e.kind for e in d.events] == ["kill_switch"]
    d = decide_account(cfg, True, False, adapted, pooled, held, [89.0], [1.0], 100.0)
    assert (d.targets, d.policy, d.killed) == (None, "halted", True)
    d = decide_account(cfg, False, False, adapted, pooled, held, [100.0], [1.0], 100.0, 0.5)
    assert (d.targets, d.policy) == (None, "halted") and d.events[0].kind == "reconcile_kill"
    cfg = PaperConfig(max_drawdown=1.0, fallback=True, fallback_window=1, fallback_lag=0.01)
    d = decide_account(cfg, False, False, adapted, pooled, held, [100.0, 95.0], [1.0, 1.0], 100.0)
    assert (d.targets, d.policy, d.fallback) == (pooled, "pooled", True)
    assert [e.kind for e in d.events] == ["fallback"]  # once for the account, not per symbol
