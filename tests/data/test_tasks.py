"""TaskSets from TOML: segments, embargo, held-out symbols, strict keys, frozen tasks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.data.sources import load_bars, load_task_bars
from market_metarl.data.synthetic import ARRegimeParams, ar_regimes, gbm
from market_metarl.data.tasks import TaskSet, load_taskset, symbol_name
from market_metarl.types import ConfigError, CostSpec, DataError, TaskSpec

TRAIN_SRC = "synthetic:ar-regimes?seed=1&tasks=30&days=60"
HELDOUT_SRC = "synthetic:ar-regimes?seed=2&tasks=30&days=60"

SYNTHETIC_TOML = f"""
[data]
symbols = ["{TRAIN_SRC}"]
heldout_symbols = ["{HELDOUT_SRC}"]
warmup_days = 20

[regimes]
method = "known"
min_task_days = 20

[splits]
train = ["2000-01-01", "2003-12-31"]
val = ["2004-02-02", "2004-12-31"]
test = ["2005-02-01", "2006-12-31"]
embargo_days = 20

[costs]
fee_bps = 0.5
slippage_bps = 1.5
"""


def n_bars(bars: pd.DataFrame, task: TaskSpec) -> int:
    """Bars inside a task's window."""
    return int(
        ((bars.index >= pd.Timestamp(task.start)) & (bars.index <= pd.Timestamp(task.end))).sum()
    )


def write(tmp_path: Path, text: str, name: str = "env.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def taskset(tmp_path_factory: pytest.TempPathFactory) -> TaskSet:
    return load_taskset(write(tmp_path_factory.mktemp("cfg"), SYNTHETIC_TOML))


def test_every_split_has_tasks(taskset: TaskSet) -> None:
    counts = {s: len(taskset.split(s)) for s in ("train", "val", "test")}
    assert all(n > 0 for n in counts.values()), counts
    assert sum(counts.values()) == len(taskset) == len(list(taskset))


def test_no_task_crosses_a_segment_boundary(taskset: TaskSet) -> None:
    windows = taskset.splits.windows()
    for task in taskset:
        seg_start, seg_end = windows[task.split]
        assert seg_start <= task.start <= task.end <= seg_end, task.name
        # and no task overlaps any other segment
        for other, (o_start, o_end) in windows.items():
            if other != task.split:
                assert task.end < o_start or task.start > o_end, (task.name, other)


def test_segments_are_separated_by_the_embargo(taskset: TaskSet) -> None:
    for source in {t.source for t in taskset}:
        spans = []
        for split in ("train", "val", "test"):
            tasks = [t for t in taskset.split(split) if t.source == source]
            if tasks:
                spans.append((min(t.start for t in tasks), max(t.end for t in tasks)))
        assert len(spans) >= 2
        for (_, a_end), (b_start, _) in itertools.pairwise(spans):
            gap = int(np.busday_count(a_end + dt.timedelta(days=1), b_start))
            assert gap >= taskset.splits.embargo_days, (source, a_end, b_start)


def test_known_regime_tasks_lie_inside_one_true_regime_with_its_params(taskset: TaskSet) -> None:
    _, regimes = ar_regimes(1, ARRegimeParams(n_tasks=30, days=60))
    for task in taskset:
        if task.source != TRAIN_SRC:
            continue
        inside = [r for r in regimes if r.start <= task.start and task.end <= r.end]
        assert len(inside) == 1, task.name
        assert task.params == inside[0].params()
        assert task.param("phi") == inside[0].phi
        assert task.label == inside[0].label


def test_heldout_symbols_only_in_val_and_test(taskset: TaskSet) -> None:
    heldout = [t for t in taskset if t.source == HELDOUT_SRC]
    assert heldout
    assert {t.split for t in heldout} == {"val", "test"}
    assert {t.source for t in taskset.split("train")} == {TRAIN_SRC}


def test_tasks_carry_costs_and_warmup_and_their_bars_load(taskset: TaskSet) -> None:
    assert taskset.costs == CostSpec(fee_bps=0.5, slippage_bps=1.5)
    bars = load_bars(TRAIN_SRC)
    for task in taskset.split("train")[:5]:
        assert task.costs == taskset.costs and task.warmup_days == 20
        window = load_task_bars(task)
        assert len(window) == 20 + n_bars(bars, task)
        assert window.index[20] == pd.Timestamp(task.start)
        assert window.index[-1] == pd.Timestamp(task.end)


def test_task_windows_are_at_least_min_task_days(taskset: TaskSet) -> None:
    bars = load_bars(TRAIN_SRC)
    for task in taskset.split("train"):
        assert n_bars(bars, task) >= taskset.regimes.min_task_days


def test_same_config_same_tasks(taskset: TaskSet, tmp_path: Path) -> None:
    assert load_taskset(write(tmp_path, SYNTHETIC_TOML)).tasks == taskset.tasks


def test_taskspec_is_frozen_and_hashable(taskset: TaskSet) -> None:
    task = taskset.tasks[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.label = "other"  # type: ignore[misc]
    assert len(set(taskset.tasks)) == len(taskset.tasks)
    clone = dataclasses.replace(task)
    assert clone == task and hash(clone) == hash(task)
    assert {task: 1}[clone] == 1
    assert dataclasses.replace(task, split="test") != task


def test_taskspec_rejects_reversed_dates_and_bad_split() -> None:
    with pytest.raises(ConfigError, match="end 2020-01-01 is before start 2020-02-01"):
        TaskSpec("bundled:SPY", "SPY", dt.date(2020, 2, 1), dt.date(2020, 1, 1))
    with pytest.raises(ConfigError, match="split must be one of"):
        TaskSpec("bundled:SPY", "SPY", dt.date(2020, 1, 1), dt.date(2020, 2, 1), split="dev")  # type: ignore[arg-type]


def test_max_task_days_cuts_long_regimes(tmp_path: Path) -> None:
    text = SYNTHETIC_TOML.replace("min_task_days = 20", "min_task_days = 10\nmax_task_days = 25")
    ts = load_taskset(write(tmp_path, text))
    bars = load_bars(TRAIN_SRC)
    lengths = [n_bars(bars, t) for t in ts.split("train")]
    assert max(lengths) <= 25 and min(lengths) >= 10
    assert len(ts.split("train")) > len(
        load_taskset(write(tmp_path, SYNTHETIC_TOML, "b.toml")).split("train")
    )


def test_too_small_embargo_gap_is_a_config_error(tmp_path: Path) -> None:
    text = SYNTHETIC_TOML.replace('val = ["2004-02-02"', 'val = ["2004-01-05"')
    with pytest.raises(ConfigError) as info:
        load_taskset(write(tmp_path, text))
    message = str(info.value)
    assert "splits.train ends 2003-12-31 and splits.val starts 2004-01-05" in message
    assert "2 trading day(s) apart" in message
    assert "embargo_days=20" in message


def test_overlapping_segments_are_a_config_error(tmp_path: Path) -> None:
    text = SYNTHETIC_TOML.replace('test = ["2005-02-01"', 'test = ["2004-06-01"')
    with pytest.raises(ConfigError, match="embargo_days"):
        load_taskset(write(tmp_path, text))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            "warmup_days = 20",
            "warmup_days = 20\nsymbol = 'x'",
            r"unknown key\(s\) data\.symbol; valid keys of \[data\]: exclude, heldout_symbols, "
            r"repair, repair_max_rows, source, symbols, warmup_days",
            id="unknown-data-key",
        ),
        pytest.param(
            "embargo_days = 20",
            "embargo_days = 20\nembargo = 3",
            r"unknown key\(s\) splits\.embargo; valid keys of \[splits\]: embargo_days, test, "
            r"train, val",
            id="unknown-splits-key",
        ),
        pytest.param(
            "slippage_bps = 1.5",
            "slippage_bps = 1.5\nfee = 2",
            r"unknown key\(s\) costs\.fee; valid keys of \[costs\]: borrow_bps_annual, fee_bps",
            id="unknown-costs-key",
        ),
        pytest.param(
            "[costs]",
            "[cost]",
            r"unknown section\(s\) cost; valid sections: data, regimes, splits, costs",
            id="unknown-section",
        ),
        pytest.param(
            "embargo_days = 20",
            "embargo_days = 'twenty'",
            r"splits\.embargo_days must be an integer",
            id="wrong-type",
        ),
        pytest.param(
            "fee_bps = 0.5",
            "fee_bps = -1",
            r"costs\.fee_bps must be a non-negative number",
            id="negative-cost",
        ),
        pytest.param(
            'val = ["2004-02-02"',
            'val = ["2004-13-01"',
            r"splits\.val dates must be YYYY-MM-DD",
            id="bad-date",
        ),
        pytest.param(
            f'heldout_symbols = ["{HELDOUT_SRC}"]',
            f'heldout_symbols = ["{TRAIN_SRC}"]',
            r"also appear in data\.symbols",
            id="heldout-also-trained",
        ),
    ],
)
def test_bad_config_is_an_error_saying_what_is_valid(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in SYNTHETIC_TOML
    with pytest.raises(ConfigError, match=message):
        load_taskset(write(tmp_path, SYNTHETIC_TOML.replace(old, new, 1)))


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_taskset(write(tmp_path, "[data\nsymbols = 1"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_taskset(tmp_path / "missing.toml")


def test_known_method_needs_a_synthetic_source(tmp_path: Path) -> None:
    text = SYNTHETIC_TOML.replace(f'"{TRAIN_SRC}"', '"synthetic:gbm?seed=1&days=2000"', 1)
    text = text.replace(f'heldout_symbols = ["{HELDOUT_SRC}"]', "heldout_symbols = []")
    with pytest.raises(ConfigError, match="'known' needs a synthetic:ar-regimes source"):
        load_taskset(write(tmp_path, text))


def test_no_training_tasks_is_a_data_error(tmp_path: Path) -> None:
    text = SYNTHETIC_TOML.replace(
        'train = ["2000-01-01", "2003-12-31"]', 'train = ["1990-01-01", "1990-06-30"]'
    )
    with pytest.raises(DataError, match="no training tasks"):
        load_taskset(write(tmp_path, text))


def write_csv(path: Path, seed: int, days: int) -> Path:
    bars = gbm(seed=seed, days=days)
    bars.index.name = "date"
    bars.to_csv(path)
    return path


CSV_TOML = """
[data]
symbols = ["csv:{train}"]
heldout_symbols = ["csv:{heldout}"]
warmup_days = 30

[regimes]
method = "window"
min_length = 40
min_task_days = 40
params = {{ length = 60 }}

[splits]
train = ["2000-01-01", "2001-12-31"]
test = ["2002-03-01", "2003-12-31"]
embargo_days = 30
"""


def test_taskset_over_csv_files(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "alpha.csv", seed=1, days=1000)
    heldout = write_csv(tmp_path / "beta.csv", seed=2, days=1000)
    ts = load_taskset(write(tmp_path, CSV_TOML.format(train=train, heldout=heldout)))
    assert {t.symbol for t in ts.split("train")} == {"ALPHA"}
    assert {t.symbol for t in ts.split("test")} == {"ALPHA", "BETA"}
    windows = ts.splits.windows()
    bars = {src: load_bars(src) for src in {t.source for t in ts}}
    for task in ts:
        seg_start, seg_end = windows[task.split]
        assert seg_start <= task.start <= task.end <= seg_end
        # a 60-bar window, maybe cut by a segment edge or joined by a short remainder
        assert 40 <= n_bars(bars[task.source], task) <= 60 + 40
        loc = bars[task.source].index.get_loc(pd.Timestamp(task.start))
        assert isinstance(loc, int) and loc >= 30  # warm-up room


def test_symbol_names() -> None:
    assert symbol_name("spy") == "SPY"
    assert symbol_name("bundled:spy") == "SPY"
    assert symbol_name("csv:data/some/aapl.csv") == "AAPL"
    # ?symbol= picks a long file's rows and names the asset; ?name= names it only
    assert symbol_name("csv:data/some/stocks.csv?symbol=msft") == "MSFT"
    assert symbol_name("csv:data/us/spy.us.txt?name=spy_stooq&symbol=spy") == "SPY_STOOQ"
    # stooq's and Kaggle's spy.us.txt are both SPY, compressed or not
    assert symbol_name("csv:data/us/spy.us.txt") == "SPY"
    assert symbol_name("csv:data/us/brk-b.US.csv.gz?repair=drop") == "BRK-B"
    assert symbol_name("yfinance:^vix") == "^VIX"


def test_heldout_synthetic_source_has_its_own_symbol_name(taskset: TaskSet) -> None:
    train_names = {t.symbol for t in taskset if t.source == TRAIN_SRC}
    heldout_names = {t.symbol for t in taskset if t.source == HELDOUT_SRC}
    assert train_names.isdisjoint(heldout_names)


FIXTURE_TOML = """
[data]
symbols = ["csv:{layouts}/yahoo_spy.csv"]
heldout_symbols = ["csv:{layouts}/stooq_spy.txt"]
warmup_days = 0

[regimes]
method = "window"
min_length = 2
min_task_days = 2
params = {{ length = 4 }}

[splits]
train = ["2020-09-01", "2020-09-04"]
test = ["2020-09-09", "2020-09-11"]
embargo_days = 2
"""


def test_taskset_over_the_real_csv_fixtures(tmp_path: Path) -> None:
    layouts = Path(__file__).resolve().parents[1] / "fixtures" / "layouts"
    ts = load_taskset(write(tmp_path, FIXTURE_TOML.format(layouts=layouts)))
    got = [(t.symbol, t.split, t.start.isoformat(), t.end.isoformat()) for t in ts]
    assert got == [
        ("YAHOO_SPY", "train", "2020-09-01", "2020-09-04"),
        ("YAHOO_SPY", "test", "2020-09-09", "2020-09-11"),
        ("STOOQ_SPY", "test", "2020-09-09", "2020-09-10"),
    ]
    assert all(t.source.startswith("csv:") for t in ts)
