"""Replaying bundled SPY day by day gives the rolling protocol's positions and the env's equity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from live_helpers import K, R, check_invariants, cli, ledger_targets, rolling_reference, sessions

from market_metarl.data.sources import load_bars
from market_metarl.envs.accounting import growth_factors
from market_metarl.live.account import PaperSession, init_account
from market_metarl.live.ledger import Ledger
from market_metarl.live.step import step
from market_metarl.meta.run import TrainedRun


def test_a_year_replayed_day_by_day_equals_the_rolling_protocol(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = sessions("2019-01-02", "2019-12-31")
    db = tmp_path / "paper.db"
    code, out, err = cli(
        capsys, "paper", "init", "--run", str(maml_run), "--feed", "bundled:SPY", "--db", str(db)
    )
    assert code == 0, err
    # the first few days through the real command line, then in-process for speed
    for day in days[:3]:
        code, out, err = cli(capsys, "paper", "step", "--db", str(db), "--asof", str(day.date()))
        assert code == 0, err
        assert out.startswith(str(day.date()))
    with PaperSession.open(db, maml_run, "bundled:SPY") as session:
        for day in days[3:-2]:
            assert step(session, day.date()).status == "stepped"
    for day in days[-2:]:
        code, out, err = cli(
            capsys, "paper", "step", "--db", str(db), "--asof", str(day.date()), "--json"
        )
        assert code == 0, err
        assert json.loads(out)["status"] == "stepped"
    assert check_invariants(db) == len(days)

    targets, orders, _ = ledger_targets(db)
    want = rolling_reference(maml_run, days)
    np.testing.assert_allclose(targets, want, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(targets, orders)
    assert np.std(want) > 0.01  # the policy moves: the comparison is not trivially flat

    # the equity path is the env's accounting of those positions
    bars = load_bars("bundled:SPY").loc[days[0] :]
    opens = bars["open"].to_numpy()[: len(days) + 1, None]
    closes = bars["close"].to_numpy()[: len(days) + 1, None]
    trained = TrainedRun.open(maml_run)
    costs = trained.experiment.tasks.costs
    growth = growth_factors(
        want[:, None],
        opens,
        closes,
        costs.proportional_rate,
        costs.borrow_bps_annual * 1e-4 / 252,
    )
    with Ledger.open(db) as ledger:
        equity = np.array([r.equity for r in ledger.equity_rows()])
    expected = 100_000.0 * np.concatenate([[1.0], np.cumprod(growth[:-1])])
    np.testing.assert_allclose(equity, expected, rtol=1e-11)

    # every block's adaptation is recorded: support dates and a hash of the adapted parameters
    with Ledger.open(db) as ledger:
        adaptations = ledger.conn.execute(
            "SELECT date, support_start, support_end, adapt_days, params_hash FROM adaptations"
        ).fetchall()
    assert len(adaptations) == -(-len(days) // R)
    first = adaptations[0]
    assert first[0] == first[2] == str(days[0].date()) and first[3] == K
    assert len({a[4] for a in adaptations}) > 1


def test_rl2_hidden_state_replays_exactly(rl2_run: Path, tmp_path: Path) -> None:
    days = sessions("2020-02-03", "2020-04-30")  # through the Covid crash
    db = tmp_path / "rl2.db"
    init_account(db, rl2_run, "bundled:SPY")
    with PaperSession.open(db) as session:
        for day in days:
            step(session, day.date())
    targets, _, _ = ledger_targets(db)
    np.testing.assert_allclose(targets, rolling_reference(rl2_run, days), rtol=0, atol=1e-10)


def test_pooled_shadow_book_follows_the_pooled_policy(maml_run: Path, tmp_path: Path) -> None:
    days = sessions("2018-06-01", "2018-08-31")
    db = tmp_path / "shadow.db"
    init_account(db, maml_run, "bundled:SPY")
    with PaperSession.open(db) as session:
        for day in days:
            step(session, day.date())
    pooled = rolling_reference(maml_run, days, "pooled")
    bars = load_bars("bundled:SPY").loc[days[0] :]
    costs = TrainedRun.open(maml_run).experiment.tasks.costs
    growth = growth_factors(
        pooled[:, None],
        bars["open"].to_numpy()[: len(days) + 1, None],
        bars["close"].to_numpy()[: len(days) + 1, None],
        costs.proportional_rate,
        costs.borrow_bps_annual * 1e-4 / 252,
    )
    with Ledger.open(db) as ledger:
        shadow = np.array([r.pooled_equity for r in ledger.equity_rows()], dtype=float)
        bh = np.array([r.benchmark_equity for r in ledger.equity_rows()], dtype=float)
    expected = 100_000.0 * np.concatenate([[1.0], np.cumprod(growth[:-1])])
    np.testing.assert_allclose(shadow, expected, rtol=1e-11)
    close = bars["close"].to_numpy()[: len(days)]
    first_open = bars["open"].to_numpy()[1]
    rate = costs.proportional_rate
    np.testing.assert_allclose(bh[1:], 100_000.0 * (1 - rate) * close[1:] / first_open, rtol=1e-11)


def test_a_step_done_is_a_noop_and_status_reports(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "noop.db"
    init_account(db, maml_run, "bundled:SPY")
    days = sessions("2019-03-01", "2019-03-08")
    with PaperSession.open(db) as session:
        for day in days:
            step(session, day.date())
    before = Ledger.open(db).dump()
    for day in (days[-1], days[2]):
        code, out, _ = cli(capsys, "paper", "step", "--db", str(db), "--asof", str(day.date()))
        assert code == 0 and "noop" in out
    with Ledger.open(db) as ledger:
        assert ledger.dump() == before

    code, out, _ = cli(capsys, "paper", "status", "--db", str(db), "--json")
    assert code == 0
    status = json.loads(out)
    assert status["last_step_date"] == "2019-03-08"
    assert set(status["positions"]) == {"SPY"}
    assert status["equity"] == pytest.approx(
        status["cash"]
        + status["shares"]["SPY"] * load_bars("bundled:SPY").at["2019-03-08", "close"]
    )
    assert status["last_adaptation"]["date"] == "2019-03-08"  # blocks start every 5 days
    code, out, _ = cli(capsys, "paper", "status", "--db", str(db))
    assert code == 0
    for word in ("equity", "cash", "position SPY", "buy-and-hold", "last adaptation", "guardrails"):
        assert word in out


def test_run_replays_from_the_last_step_to_asof(
    maml_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = sessions("2019-05-01", "2019-06-28")
    db = tmp_path / "run.db"
    init_account(db, maml_run, "bundled:SPY")
    code, _, err = cli(capsys, "paper", "run", "--db", str(db), "--asof", "2019-05-01")
    assert code == 2 and "--start" in err  # an account not stepped yet needs a first day
    code, out, err = cli(
        capsys, "paper", "run", "--db", str(db), "--start", "2019-05-01", "--asof", "2019-05-31"
    )
    assert code == 0, err
    code, out, err = cli(capsys, "paper", "run", "--db", str(db), "--asof", "2019-06-28")
    assert code == 0, err
    assert "resuming after 2019-05-31" in out
    assert check_invariants(db) == len(days)
    targets, _, _ = ledger_targets(db)
    np.testing.assert_allclose(targets, rolling_reference(maml_run, days), rtol=0, atol=1e-10)


def test_positions_and_equity_equal_the_rolling_backtest(maml_run: Path, tmp_path: Path) -> None:
    from market_metarl.backtest import runner

    out = runner.run_backtest(
        maml_run,
        "bundled:SPY",
        protocol="rolling",
        adapt_days=K,
        start="2019-01-02",
        end="2019-03-29",
        out_dir=tmp_path / "backtest",
        every=R,
        n_boot=10,
    )
    table = pd.read_csv(out / "positions.csv", parse_dates=["date"])
    table = table[table["strategy"] == "adapted"].set_index("date")
    db = tmp_path / "paper.db"
    init_account(db, maml_run, "bundled:SPY")
    with PaperSession.open(db) as session:
        for day in table.index:
            step(session, day.date())
    targets, _, _ = ledger_targets(db)
    traded = table["position"].dropna()  # the last day only earns
    np.testing.assert_allclose(targets[: len(traded)], traded.to_numpy(), rtol=1e-11, atol=1e-12)
    with Ledger.open(db) as ledger:
        equity = np.array([r.equity for r in ledger.equity_rows()])
    np.testing.assert_allclose(equity, table["equity"].to_numpy(), rtol=1e-9)
