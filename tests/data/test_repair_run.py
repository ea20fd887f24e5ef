"""A bad row in a csv universe: dropped under repair = drop for every layer, recorded in the run."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from market_metarl.data.sources import load_bars, load_task_bars
from market_metarl.meta.experiment import Experiment
from market_metarl.meta.trainer import train
from market_metarl.types import DataError

BROKEN_DAY = "2010-06-15"

RUN_TOML = """
[data]
symbols = ["csv:{folder}/*.csv"]
warmup_days = 2
repair = "drop"

[regimes]
method = "window"
min_length = 40
min_task_days = 40
params = {{ length = 60 }}

[splits]
train = ["2010-01-01", "2010-12-31"]
test = ["2011-03-01", "2011-12-31"]
embargo_days = 20

[costs]
fee_bps = 0.0
slippage_bps = 0.0
borrow_bps_annual = 0.0

[features]
vol_window = 0
momentum_horizons = []
volume_window = 0
drawdown = false

[env]
window = 1
action = "continuous"
max_drawdown = 1.0

[train]
iterations = 2
checkpoint_every = 2
adapt_days = 5
horizon = 20
hidden = 8
position_input = false

[train.pooled]
batch = 4
"""


def write_universe(folder: Path) -> Path:
    """SPY and IWM 2009-2011 from the bundled data as csv files; SPY with one inf close."""
    folder.mkdir()
    for symbol in ("SPY", "IWM"):
        bars = load_bars(f"bundled:{symbol}").loc["2009-09-01":"2011-12-31"]
        text = bars.to_csv(float_format="%.6f")
        if symbol == "SPY":
            day = next(line for line in text.splitlines() if line.startswith(BROKEN_DAY))
            cells = day.split(",")
            cells[4] = "inf"  # date, open, high, low, close, volume
            text = text.replace(day, ",".join(cells))
        (folder / f"{symbol.lower()}.csv").write_text(text)
    return folder / "spy.csv"


def config(folder: Path, repair: str) -> dict[str, Any]:
    cfg = tomllib.loads(RUN_TOML.format(folder=folder))
    cfg["data"]["repair"] = repair
    return cfg


def test_the_same_universe_is_refused_under_refuse(tmp_path: Path) -> None:
    spy = write_universe(tmp_path / "csv")
    with pytest.raises(DataError) as info:
        Experiment.from_config(config(tmp_path / "csv", "refuse"))
    message = str(info.value)
    assert message.startswith(f"csv:{spy}: non-finite value on {BROKEN_DAY} (column close = inf)")
    assert '[data] repair = "drop"' in message


def test_a_trained_run_records_the_dropped_row(tmp_path: Path) -> None:
    spy = write_universe(tmp_path / "csv")
    exp = Experiment.from_config(config(tmp_path / "csv", "drop"))
    assert {t.symbol for t in exp.tasks} == {"IWM", "SPY"}
    spy_source = f"csv:{spy}?repair=drop&repair_max_rows=3"
    assert {t.source for t in exp.tasks if t.symbol == "SPY"} == {spy_source}
    # the day is absent for every layer that loads the task's source: no bar, nothing filled in
    covering = [
        t for t in exp.tasks if t.symbol == "SPY" and str(t.start) < BROKEN_DAY < str(t.end)
    ]
    assert covering
    bars = load_task_bars(covering[0])
    assert pd.Timestamp(BROKEN_DAY) not in bars.index
    full = load_bars("bundled:SPY").loc[bars.index[0] : bars.index[-1]].index
    assert list(bars.index) == [d for d in full if d != pd.Timestamp(BROKEN_DAY)]

    run_dir = train(exp, "pooled", tmp_path / "run", seed=0)
    repairs = json.loads((run_dir / "data_repairs.json").read_text())
    assert repairs == [
        {
            "source": f"csv:{spy}",
            "date": BROKEN_DAY,
            "column": "close",
            "value": "inf",
            "reason": "non-finite value",
        }
    ]
    state = json.loads((run_dir / "run.json").read_text())
    assert spy_source in state["data_hashes"]
    assert 'repair = "drop"' in (run_dir / "config.toml").read_text()
