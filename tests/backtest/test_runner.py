"""End to end: files written, equity recomputed independently, bad input refused cleanly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtest_helpers import synthetic_bars, write_csv

from market_metarl.backtest.runner import run_backtest
from market_metarl.backtest.strategies import strategy_names
from market_metarl.cli import main

RATE = (1.0 + 2.0) * 1e-4  # fee + slippage of the test run's [costs]
BORROW = 50.0 * 1e-4 / 252


def _equity_by_hand(w: np.ndarray, opens: np.ndarray, closes: np.ndarray, e0: float) -> np.ndarray:
    """Fill at the next open, pay cost on the change of weight, mark at the close (by hand)."""
    equity, held = [e0], 0.0
    for i, target in enumerate(w):
        gap = opens[i + 1] / closes[i]
        e_open = equity[-1] * (1 + held * (gap - 1))
        pre = held * gap / (1 + held * (gap - 1))
        e_after = e_open * (1 - RATE * abs(target - pre) - BORROW * max(-target, 0.0))
        intraday = closes[i + 1] / opens[i + 1]
        equity.append(e_after * (1 + target * (intraday - 1)))
        held = target * intraday / (1 + target * (intraday - 1))
    return np.array(equity)


@pytest.fixture(scope="module")
def rolling_out(
    syn_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("bt")
    bars = synthetic_bars(seed=9, days=220)
    spec = write_csv(bars, root / "xyz.csv")
    out = run_backtest(
        syn_run, spec, "rolling", adapt_days=5, seeds=2, out_dir=root / "out", every=10, n_boot=100
    )
    return out, bars


def test_files_and_fields(rolling_out: tuple[Path, pd.DataFrame]) -> None:
    out, _ = rolling_out
    names = {p.name for p in out.iterdir()}
    assert {"metrics.json", "positions.csv", "report.html", "equity.png"} <= names
    assert {"adaptation_gain.png", "reconciliation.png"} <= names
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["protocol"] == "rolling" and doc["adapt_days"] == 5 and doc["seeds"] == 2
    for name in (*strategy_names(), "scratch/seed1"):
        assert set(doc["strategies"][name]) >= {
            "total_return",
            "annual_return",
            "annual_vol",
            "sharpe",
            "sortino",
            "max_drawdown",
            "calmar",
            "turnover",
            "n_days",
            "hit_rate",
        }
    assert set(doc["p_beats"]) == set(strategy_names()) - {"adapted"}
    assert set(doc["reconciliation"]["by_strategy"]) >= set(strategy_names())
    paired = doc["paired_intervals"]
    assert set(paired["pairs"]) == {
        "adapted - zeroshot",
        "adapted - pooled",
        "adapted - vol_target",
    }
    assert paired["block_days"] == 20 and paired["series"] == "XYZ"
    for pair in paired["pairs"].values():
        iv = pair["sharpe_diff"]
        assert iv["low"] <= iv["point"] <= iv["high"] and pair["n_days"] > 40
    assert doc["backtest_settings"]["vol_target"] == 0.15
    assert doc["fits"]["hmm_switch"]["XYZ"]["fit_end"] == "2003-12-31"
    assert "by_symbol" not in doc and "portfolio" not in doc  # one asset
    assert doc["reconciliation"]["within_tolerance"] is True
    assert doc["reconciliation"]["max_abs_rel_diff"] < 1e-9
    assert 0.0 <= doc["deflated_sharpe"]["deflated_sharpe"] <= 1.0
    ci = doc["confidence_intervals"]["adapted"]["sharpe"]
    assert ci["low"] <= ci["point"] <= ci["high"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "hindsight" in html
    assert "paired circular block bootstrap" in html and "adapted - vol_target" in html


def test_returns_csv_is_the_daily_net_return_of_each_book(
    rolling_out: tuple[Path, pd.DataFrame],
) -> None:
    out, _ = rolling_out
    returns = pd.read_csv(out / "returns.csv", parse_dates=["date"])
    positions = pd.read_csv(out / "positions.csv", parse_dates=["date"])
    assert list(returns.columns) == ["date", "strategy", "symbol", "return"]
    doc = json.loads((out / "metrics.json").read_text())
    assert set(returns["strategy"]) == set(doc["strategies"])
    for label, rows in positions.groupby("strategy", sort=False):
        equity = rows.set_index("date")["equity"]
        mine = returns[returns["strategy"] == label].set_index("date")["return"]
        # positions.csv rounds equity to 12 digits: its returns are good to about 1e-11
        np.testing.assert_allclose(mine, equity.pct_change().loc[mine.index], rtol=0, atol=1e-10)
        assert len(mine) == doc["strategies"][label]["n_days"]


def test_equity_recomputed_from_positions(rolling_out: tuple[Path, pd.DataFrame]) -> None:
    out, bars = rolling_out
    positions = pd.read_csv(out / "positions.csv", parse_dates=["date"])
    assert list(positions.columns) == ["date", "strategy", "symbol", "position", "equity"]
    doc = json.loads((out / "metrics.json").read_text())
    for label, rows in positions.groupby("strategy", sort=False):
        px = bars.loc[rows["date"]]
        w = rows["position"].to_numpy()[:-1]
        assert not np.isnan(w).any() and np.isnan(rows["position"].iloc[-1])
        equity = _equity_by_hand(w, px["open"].to_numpy(), px["close"].to_numpy(), 100_000.0)
        np.testing.assert_allclose(rows["equity"].to_numpy(), equity, rtol=1e-9)
        r = equity[1:] / equity[:-1] - 1
        figures = doc["strategies"][label]
        assert figures["n_days"] == len(r)
        assert figures["total_return"] == pytest.approx(equity[-1] / equity[0] - 1, rel=1e-8)
        if figures["sharpe"] is None:  # a book that never traded: no Sharpe ratio
            assert np.all(r == 0)
        else:
            sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252)
            assert figures["sharpe"] == pytest.approx(sharpe, rel=1e-6)
        peak = np.maximum.accumulate(equity)
        assert figures["max_drawdown"] == pytest.approx(
            (equity / peak - 1).min(), rel=1e-8, abs=1e-12
        )
        years = len(r) / 252
        assert figures["annual_return"] == pytest.approx(
            (equity[-1] / equity[0]) ** (1 / years) - 1, rel=1e-7
        )


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return code, err[0]


def test_bad_input_exits_2_and_leaves_nothing(
    syn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_csv(synthetic_bars(days=120), tmp_path / "good.csv")
    short = write_csv(synthetic_bars(days=6), tmp_path / "short.csv")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "run.json").write_text("{not json")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("run.json", "config.toml"):
        (broken / f).write_text((syn_run / f).read_text())
    (broken / "checkpoints").mkdir()
    (broken / "checkpoints" / "maml.pt").write_bytes(b"garbage")
    cases = {
        "short": ["--run", str(syn_run), "--data", short, "--protocol", "rolling"],
        "dates": ["--run", str(syn_run), "--data", good, "--start", "2030-01-01"],
        "end": ["--run", str(syn_run), "--data", good, "--end", "1990-01-01"],
        "missing": ["--run", str(tmp_path / "nope"), "--data", good],
        "corrupt": ["--run", str(corrupt), "--data", good],
        "broken": ["--run", str(broken), "--data", good, "--protocol", "rolling"],
        "protocol": ["--run", str(syn_run), "--data", good, "--protocol", "sideways"],
        "every": ["--run", str(syn_run), "--data", good, "--every", "0"],
        "no-data": ["--run", str(syn_run), "--data", " , "],
        "same-symbol": ["--run", str(syn_run), "--data", f"{good},{good}"],
    }
    for name, args in cases.items():
        out = tmp_path / f"out-{name}"
        code, line = _cli(["backtest", *args, "--out", str(out)], capsys)
        assert code == 2, (name, line)
        assert line.startswith("error: "), (name, line)
        assert not out.exists(), name
        assert not list(tmp_path.glob(f".out-{name}*")), name


def test_foreign_out_folder_is_refused(
    syn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, line = _cli(["backtest", "--run", str(syn_run), "--out", str(out)], capsys)
    assert code == 2 and "not an earlier backtest" in line
    assert (out / "precious.txt").read_text() == "keep me"
