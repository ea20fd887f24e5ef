"""Write the walkthrough notebooks in notebooks/ from the cell sources below (no outputs).

Run ``.venv/bin/python scripts/make_notebooks.py`` after editing a walkthrough here; the test suite
executes every notebook with nbmake. Each notebook reads ``MARKET_METARL_SMALL`` (set by the tests)
to pick small budgets, so it runs in seconds there and at full size when a person runs it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
SETUP = """import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SMALL = os.environ.get("MARKET_METARL_SMALL") == "1"  # the test suite runs us with small budgets
ROOT = Path.cwd() if (Path.cwd() / "envs").is_dir() else Path.cwd().parent
OUT = Path(os.environ.get("MARKET_METARL_NB_OUT", ROOT / "out" / "notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
"""

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_data_and_regimes.ipynb": [
        ("md", """# 01 · Data and regimes

market_metarl treats each market regime as a task. This walkthrough goes from a symbol to a
labelled, time-split set of regime tasks, offline, on the data shipped in `data/`."""),
        ("code", SETUP),
        ("md", """## Bundled data
`data/` ships cleaned daily bars built from permissively licensed sources (QuantConnect Lean
equities with their factor files applied, arch's S&P 500 and NASDAQ, CBOE VIX). The manifest says
where each file came from, its licence and its sha256."""),
        ("code", """from market_metarl.data.bundled import read_manifest

read_manifest()[["symbol", "first_date", "last_date", "rows", "licence"]]"""),
        ("md", """## Loading a source
A source spec names data: `bundled:SPY`, `csv:path/to/file.csv`, `yfinance:SPY`, or
`synthetic:ar-regimes?seed=3`. Every loader ends in the same validation, which returns a report."""),
        ("code", """from market_metarl.data.sources import load_bars_with_report

bars, report = load_bars_with_report("bundled:SPY")
print(report.rows, "rows", report.first.date(), "to", report.last.date())
print("notes:", report.notes, "warnings:", report.warnings)
bars.tail()"""),
        ("md", """Bad input is a clear error that says what, where and how to fix it:"""),
        ("code", """from market_metarl.data.bars import validate_bars
from market_metarl.types import DataError

broken = bars.iloc[:5].copy()
broken.iloc[2, broken.columns.get_loc("high")] = 1.0  # high below low
try:
    validate_bars(broken, source="example")
except DataError as exc:
    print("DataError:", exc)"""),
        ("md", """## Causal features
Every feature at date *t* uses bars dated <= *t* only. We check it here the way the tests do:
perturb the future and find the past unchanged."""),
        ("code", """import numpy as np

from market_metarl.data.features import compute_features

feats = compute_features(bars)
cut = bars.index[3000]
shocked = bars.copy()
shocked.loc[shocked.index > cut, ["open", "high", "low", "close"]] *= 3.0
same = np.array_equal(
    feats.loc[:cut].to_numpy(), compute_features(shocked).loc[:cut].to_numpy(), equal_nan=True
)
print("features up to", cut.date(), "unchanged by the future:", same)
feats.describe().T[["mean", "std", "min", "max"]]"""),
        ("md", """## Regimes
Four slicers share one labelling (`bull`/`bear`/`sideways` x `calm`/`volatile`). The HMM finds
2008 and 2020 as high-volatility regimes distinct from the calm years around them."""),
        ("code", """from market_metarl.data.plotting import plot_regimes
from market_metarl.data.regimes import regimes_to_frame, slice_regimes

regimes = slice_regimes(bars, "hmm", "SPY", min_length=40, seed=0)
path = plot_regimes(bars, regimes, OUT / "spy_hmm_regimes.png", title="SPY: HMM regimes")
frame = regimes_to_frame(regimes, bars)
print(frame.label.value_counts())
frame[(frame.start >= "2008-01-01") & (frame.start <= "2009-12-31")]"""),
        ("code", """from IPython.display import Image

Image(filename=str(path))"""),
        ("md", """## Tasks
An `envs/*.toml` file names the symbols, the regime method, train/test periods separated by an
embargo, and held-out symbols. Regimes are cut into frozen `TaskSpec` values; none crosses a split."""),
        ("code", """from market_metarl.data.tasks import load_taskset

tasks = load_taskset(ROOT / "envs" / "default.toml")
table = tasks.to_frame()
print(table.groupby("split").size())
table.groupby(["symbol", "split"]).size().unstack(fill_value=0)"""),
    ],
    "02_environments.ipynb": [
        ("md", """# 02 · Environments

A regime task becomes a Gymnasium environment. A decision after the close of day *t* is filled at
the open of *t+1*, costs are charged there, and the book is marked at each close."""),
        ("code", SETUP),
        ("code", """import gymnasium as gym
import numpy as np

import market_metarl.envs  # registers market_metarl/Trading-v0 and Portfolio-v0

env = gym.make("market_metarl/Trading-v0")
obs, info = env.reset(seed=0)
print(env.observation_space, env.action_space)
print(info)"""),
        ("md", """Gymnasium's own checker passes:"""),
        ("code", """from gymnasium.utils.env_checker import check_env

check_env(env.unwrapped, skip_render_check=True)
print("check_env: ok")"""),
        ("md", """## Known answer: constant prices
With constant prices every policy loses exactly its costs."""),
        ("code", """import pandas as pd

from market_metarl.envs.spec import EnvSpec
from market_metarl.envs.trading_env import TradingEnv
from market_metarl.types import CostSpec

days = pd.bdate_range("2020-01-01", periods=120, name="date")
flat = pd.DataFrame({"open": 100.0, "high": 100.0, "low": 100.0, "close": 100.0, "volume": 1e6}, index=days)
spec = EnvSpec(window=5, action="continuous", max_drawdown=1.0)
costs = CostSpec(fee_bps=1.0, slippage_bps=2.0, borrow_bps_annual=0.0)
env = TradingEnv.from_bars(flat, spec, costs)
obs, _ = env.reset(seed=0)
rng = np.random.default_rng(0)
paid, done = 0.0, False
while not done:
    obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, size=1).astype(np.float32))
    paid += info["cost"]
    done = terminated or truncated
print(f"equity {info['equity']:.4f} = initial {spec.initial_cash:.0f} - costs {paid:.4f}")"""),
        ("md", """## A random policy on a real regime, and buy-and-hold"""),
        ("code", """from market_metarl.data.tasks import load_taskset

tasks = load_taskset(ROOT / "envs" / "default.toml")
task = tasks.split("test")[0]
env = TradingEnv(task, EnvSpec(window=5, action="continuous", max_drawdown=1.0), task.costs)
curves = {}
for name, policy in {"buy and hold": lambda o: np.array([1.0], np.float32),
                     "random": lambda o: rng.uniform(-1, 1, 1).astype(np.float32)}.items():
    obs, _ = env.reset(seed=0)
    equity, done = [], False
    while not done:
        obs, r, term, trunc, info = env.step(policy(obs))
        equity.append(info["equity"])
        done = term or trunc
    curves[name] = equity
fig, ax = plt.subplots(figsize=(8, 3))
for name, eq in curves.items():
    ax.plot(eq, label=name)
ax.set_title(f"{task.symbol} {task.start}..{task.end} ({task.label})")
ax.legend()
fig.savefig(OUT / "env_curves.png", dpi=100)
plt.show()"""),
        ("md", """## The batched env
Many tasks step at once as numpy arrays; on the same actions it gives exactly the single env's
rewards and equity."""),
        ("code", """from market_metarl.envs.vector_env import BatchedTradingEnv

batch = tasks.split("train")[:8]
venv = BatchedTradingEnv(batch, EnvSpec(window=5, action="continuous"), tasks.costs)
obs, _ = venv.reset(seed=0)
for _ in range(5):
    obs, rewards, terminated, truncated, infos = venv.step(np.ones((len(batch), 1), np.float32))
print(obs.shape, rewards.round(5))"""),
    ],
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
    return nb


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nbformat.write(build(cells), ROOT / "notebooks" / name)
        print("wrote", name)


if __name__ == "__main__":
    main()
