"""The toolkit from Python, through ``import market_metarl as mm`` alone.

One walk: load bars, read a tiny config with overrides, train in a temporary directory, adapt an
agent and act, backtest, write the report, paper-trade a few replayed days. No command line.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import market_metarl as mm

REPO = Path(__file__).resolve().parents[1]

TINY_TOML = """
[data]
symbols = ["synthetic:ar-regimes?seed=1&tasks=60&days=71"]
warmup_days = 2

[regimes]
method = "known"
min_task_days = 71

[splits]
train = ["2000-01-01", "2009-12-31"]
test = ["2010-03-01", "2019-12-31"]
embargo_days = 20

[costs]
fee_bps = 1.0
slippage_bps = 2.0
borrow_bps_annual = 50.0

[features]
vol_window = 0
momentum_horizons = []
volume_window = 0
drawdown = false

[env]
window = 2
action = "continuous"
max_drawdown = 1.0

[train]
iterations = 50
checkpoint_every = 1
adapt_days = 10

[paper]
every = 5
max_gross = 10.0
max_turnover = 10.0
max_drawdown = 1.0
fallback = false
"""
"""A synthetic task family that trains in seconds (the paper-trading tests' config) as a file."""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="module")
def run(config: Path) -> mm.TrainedRun:
    """A MAML run trained in memory for 2 iterations (the file says 50: the override wins)."""
    exp = mm.Experiment.from_toml(config, train={"pooled": {"iterations": 2}})
    return mm.train(exp, "maml", iterations=2, seed=0)


def test_import_market_metarl_loads_no_heavy_library_until_a_name_is_used() -> None:
    probe = (
        "import json, sys\n"
        "import market_metarl as mm\n"
        "heavy = ('numpy', 'pandas', 'torch', 'matplotlib', 'backtrader', 'gymnasium')\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "names = sorted(mm.__all__)\n"
        "mm.load\n"
        "print(json.dumps([before, names, 'torch' in sys.modules]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    before, names, torch_after_load = json.loads(proc.stdout)
    assert before == [], f"`import market_metarl` loads {before}"
    assert {"load", "train", "run_backtest", "PaperAccount", "Experiment", "TaskSet"} <= set(names)
    # the API module itself is light: asking for mm.load imports no torch yet
    assert torch_after_load is False


def test_every_public_name_resolves_and_an_unknown_one_raises() -> None:
    for name in mm.__all__:
        assert getattr(mm, name) is not None, name
    assert set(mm.__all__) <= set(dir(mm))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mm.nope  # noqa: B018


def test_no_public_name_shadows_a_submodule() -> None:
    # `mm.backtest` as a function would hide the layer market_metarl.backtest from getattr, and
    # break `import market_metarl.backtest.runner as r` and dotted mock paths
    shadowing = [n for n in mm.__all__ if importlib.util.find_spec(f"market_metarl.{n}")]
    assert shadowing == []
    mm.run_backtest  # noqa: B018
    import market_metarl.backtest.runner as runner

    assert mm.backtest.runner is runner


def test_load_cuts_the_bars_to_the_dates_given() -> None:
    bars = mm.load("bundled:SPY", start="2020-01-01", end="2020-01-31")
    assert bars.index[0].date().isoformat() == "2020-01-02"  # Jan 1st is a holiday
    assert bars.index[-1].date().isoformat() == "2020-01-31"
    assert len(bars) == 21 and list(bars.columns) == ["open", "high", "low", "close", "volume"]
    with pytest.raises(mm.ConfigError, match="start must be a date like 2020-01-31"):
        mm.load("bundled:SPY", start="01/02/2020")
    with pytest.raises(mm.DataError, match="no bars between"):
        mm.load("bundled:SPY", start="1900-01-01", end="1900-12-31")


def test_task_set_and_experiment_read_a_toml_with_overrides(config: Path) -> None:
    tasks = mm.TaskSet.from_toml(config)
    fewer = mm.TaskSet.from_toml(config, data={"symbols": ["synthetic:ar-regimes?seed=1&tasks=30"]})
    assert len(tasks.split("train")) > len(fewer.split("train")) > 0
    exp = mm.Experiment.from_toml(config, train={"adapt_days": 5, "pooled": {"iterations": 3}})
    assert (exp.train.adapt_days, exp.train.iterations) == (5, 50)  # merged, not replaced
    assert exp.train.of("pooled").iterations == 3
    with pytest.raises(mm.ConfigError, match="unknown section"):
        mm.Experiment.from_toml(config, trian={"iterations": 2})


def test_train_in_memory_then_adapt_and_act(run: mm.TrainedRun) -> None:
    assert run.path.is_dir() and (run.path / "checkpoints" / "maml.pt").is_file()
    rows = [line.split(",")[:2] for line in (run.path / "metrics.csv").read_text().splitlines()]
    done = {(learner, int(it)) for learner, it in rows[1:]}
    assert done == {("maml", 1), ("maml", 2), ("pooled", 1), ("pooled", 2)}  # iterations=2
    bars = mm.load("bundled:SPY", start="2019-01-01", end="2019-06-28")
    view = run.market_view(bars)
    k, day = run.adapt_days, 30
    agent = run.agent("adapted")
    assert isinstance(agent, mm.Agent)
    obs = view.episode.obs[0, day].numpy()
    before = agent.act(obs)
    agent.adapt(view.episode.window(day - k + 1, day))
    after = agent.act(obs)
    assert after.shape == (1,) and np.isfinite(after).all()
    assert not np.allclose(before, after)  # adapting on K days changed the decision


def test_backtest_then_report(run: mm.TrainedRun, tmp_path: Path) -> None:
    result = mm.run_backtest(
        run, "bundled:SPY", protocol="rolling", start="2019-03-01", end="2019-06-28",
        strategies=["adapted", "pooled", "buy_and_hold"], n_boot=50, every=5,
    )  # fmt: skip
    assert result.protocol == "rolling" and result.path is None
    figures = result.metrics["strategies"]
    assert set(figures) == {"adapted", "pooled", "buy_and_hold"}
    for name in figures:
        for key in ("total_return", "sharpe", "max_drawdown", "turnover"):
            assert math.isfinite(figures[name][key]), (name, key)
    assert result.summary.loc["adapted", "sharpe"] == figures["adapted"]["sharpe"]
    positions = result.positions
    assert list(positions.columns) == ["date", "strategy", "symbol", "position", "equity"]
    adapted = positions[positions.strategy == "adapted"]
    assert adapted.date.iloc[0].date().isoformat() == "2019-03-01"
    assert adapted.date.iloc[-1].date().isoformat() == "2019-06-28"
    bh = positions[positions.strategy == "buy_and_hold"].position.dropna()
    assert (bh == 1.0).all()
    # equity compounds the daily returns exactly
    returns = result.returns[result.returns.strategy == "adapted"]
    growth = float(np.exp(np.log1p(returns["return"]).sum()))
    assert adapted.equity.iloc[-1] / adapted.equity.iloc[0] == pytest.approx(growth, rel=1e-9)
    page = result.report(tmp_path / "bt")
    assert page == tmp_path / "bt" / "report.html" and page.is_file()
    written = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert written["strategies"]["adapted"]["sharpe"] == figures["adapted"]["sharpe"]


def test_paper_account_init_step_status(run: mm.TrainedRun, tmp_path: Path) -> None:
    db = tmp_path / "paper.db"
    account = mm.PaperAccount.init(db, run, "bundled:SPY", cash=50_000.0)
    first = account.step("2019-04-01")
    assert (first.status, first.date) == ("stepped", "2019-04-01")
    done = mm.PaperAccount.open(db).run(until="2019-04-05")
    assert (done.steps, str(done.last_step)) == (4, "2019-04-05")
    assert account.step("2019-04-05").status == "noop"  # a day already done
    status = account.status()
    assert status["last_step_date"] == "2019-04-05"
    assert status["initial_cash"] == 50_000.0 and math.isfinite(status["equity"])
    assert status["account"]["symbol"] == "SPY" and status["account"]["run"] == str(run.path)
    assert "2019-04-05" in account.describe()
    with pytest.raises(mm.RunError, match="exists already"):
        mm.PaperAccount.init(db, run, "bundled:SPY")
    with pytest.raises(mm.RunError):
        mm.PaperAccount.open(tmp_path / "missing.db")


def test_a_temporary_run_is_removed_with_its_object(config: Path, tmp_path: Path) -> None:
    exp = mm.Experiment.from_toml(config, train={"pooled": {"iterations": 1}})
    temporary = mm.train(exp, "maml", iterations=1)
    folder = temporary.path.parent
    assert folder.is_dir()
    del temporary
    gc.collect()
    assert not folder.exists()
    kept = mm.train(exp, "maml", out=tmp_path / "kept", iterations=1)
    assert kept.path == tmp_path / "kept" and mm.open_run(kept.path).algo == "maml"
    with pytest.raises(mm.RunError, match="give out="):
        mm.train(exp, "maml", iterations=1, resume=True)
