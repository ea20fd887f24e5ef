"""Universes: csv globs and directories expand to one asset per file, sorted, with excludes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from market_metarl.data.repair import RepairPolicy
from market_metarl.data.sources import load_bars
from market_metarl.data.tasks import load_taskset
from market_metarl.data.universe import Asset, expand_symbols, expand_universe
from market_metarl.types import ConfigError, DataError

UNIVERSE = Path(__file__).resolve().parents[1] / "fixtures" / "universe"
STOOQ = UNIVERSE / "stooq"
KAGGLE = UNIVERSE / "kaggle"


def names(assets: tuple[Asset, ...]) -> list[str]:
    return [a.name for a in assets]


def test_glob_expands_to_one_sorted_source_per_file() -> None:
    assets = expand_symbols([f"csv:{STOOQ}/*.us.txt"])
    assert assets == (
        Asset("AGG", f"csv:{STOOQ}/agg.us.txt"),
        Asset("SPY", f"csv:{STOOQ}/spy.us.txt"),
    )
    for asset in assets:
        assert len(load_bars(asset.source)) == 5


def test_directory_expands_to_its_data_files_only() -> None:
    # NOTES.md sits beside the two .us.txt files
    assert (STOOQ / "NOTES.md").is_file()
    for spec in (f"csv:{STOOQ}/", f"csv:{STOOQ}"):
        assert names(expand_symbols([spec])) == ["AGG", "SPY"]


def test_relative_patterns_resolve_against_the_working_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(UNIVERSE)
    assets = expand_symbols(["csv:kaggle/*.txt", "bundled:GOOG"])
    assert [a.source for a in assets] == [
        f"csv:kaggle{os.sep}dia.us.txt",
        f"csv:kaggle{os.sep}spy.us.txt",
        "bundled:GOOG",
    ]
    assert len(load_bars(assets[0].source)) == 5


def test_pattern_options_and_the_repair_policy_reach_every_file() -> None:
    drop = RepairPolicy("drop", 2)
    assets = expand_symbols([f"csv:{KAGGLE}/", "GOOG", "synthetic:gbm?seed=1"], repair=drop)
    assert [a.source for a in assets] == [
        f"csv:{KAGGLE}/dia.us.txt?repair=drop&repair_max_rows=2",
        f"csv:{KAGGLE}/spy.us.txt?repair=drop&repair_max_rows=2",
        "bundled:GOOG",  # bundled and synthetic data are clean by construction
        "synthetic:gbm?seed=1",
    ]
    # a source's own ?repair= wins over [data] repair
    own = expand_symbols([f"csv:{KAGGLE}/d*.txt?repair=refuse"], repair=drop)
    assert [a.source for a in own] == [f"csv:{KAGGLE}/dia.us.txt?repair=refuse"]


def test_excludes_drop_by_name_glob_or_path_glob_from_both_lists() -> None:
    universe = expand_universe(
        [f"csv:{STOOQ}/*.txt"],
        [f"csv:{KAGGLE}/*.txt"],
        exclude=["ag?", "*/kaggle/spy.us.txt"],
    )
    assert names(universe.train) == ["SPY"]
    assert names(universe.heldout) == ["DIA"]


def test_empty_glob_is_an_error_naming_the_pattern(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"csv:.*/stooq/\*\.csv: the pattern matches no file"):
        expand_symbols([f"csv:{STOOQ}/*.csv"])
    with pytest.raises(DataError, match="the directory holds no data file"):
        expand_symbols([f"csv:{tmp_path}/"])
    with pytest.raises(DataError, match="no such directory"):
        expand_symbols([f"csv:{tmp_path}/missing/"])


def test_exclude_that_matches_nothing_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"data.exclude \['SPX'\] match no symbol.*AGG, SPY"):
        expand_symbols([f"csv:{STOOQ}/"], exclude=["SPY", "SPX"])


def test_two_files_with_one_name_are_an_error_naming_both() -> None:
    with pytest.raises(ConfigError) as info:
        expand_symbols([f"csv:{STOOQ}/", f"csv:{KAGGLE}/"])
    message = str(info.value)
    assert f"csv:{STOOQ}/spy.us.txt and csv:{KAGGLE}/spy.us.txt" in message
    assert "both resolve to the symbol name SPY" in message
    assert f'exclude = ["{KAGGLE}/spy.us.txt"]' in message
    assert f"csv:{KAGGLE}/spy.us.txt?name=SPY_2" in message
    with pytest.raises(ConfigError, match=r"bundled:SPY and bundled:spy.*list only one of them"):
        expand_symbols(["SPY", "bundled:spy"])
    # either fix works
    kept = expand_symbols([f"csv:{STOOQ}/", f"csv:{KAGGLE}/"], exclude=["*/kaggle/spy.us.txt"])
    assert names(kept) == ["AGG", "SPY", "DIA"]
    renamed = expand_symbols(
        [f"csv:{STOOQ}/", f"csv:{KAGGLE}/d*", f"csv:{KAGGLE}/spy.us.txt?name=SPY_K"]
    )
    assert names(renamed) == ["AGG", "SPY", "DIA", "SPY_K"]


def test_a_file_listed_twice_is_an_error() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        expand_symbols([f"csv:{STOOQ}/", f"csv:{STOOQ}/spy.us.txt"])


def test_a_training_glob_leaves_out_held_out_names_an_explicit_listing_is_an_error() -> None:
    universe = expand_universe([f"csv:{STOOQ}/*.txt"], [f"csv:{KAGGLE}/spy.us.txt"])
    assert names(universe.train) == ["AGG"] and names(universe.heldout) == ["SPY"]
    with pytest.raises(ConfigError, match=r"heldout_symbols \['SPY'\] also appear in data.symbols"):
        expand_universe(
            [f"csv:{STOOQ}/agg.us.txt", f"csv:{STOOQ}/spy.us.txt"], [f"csv:{KAGGLE}/spy.us.txt"]
        )


UNIVERSE_TOML = """
[data]
symbols = ["csv:{stooq}/*.us.txt"]
heldout_symbols = ["csv:{kaggle}/"]
exclude = ["*/kaggle/spy.us.txt"]
warmup_days = 0

[regimes]
method = "window"
min_length = 2
min_task_days = 2
params = {{ length = 3 }}

[splits]
train = ["2017-11-01", "2017-11-03"]
test = ["2017-11-06", "2017-11-07"]
embargo_days = 0
"""


def test_a_config_universe_becomes_tasks(tmp_path: Path) -> None:
    path = tmp_path / "env.toml"
    path.write_text(UNIVERSE_TOML.format(stooq=STOOQ, kaggle=KAGGLE))
    ts = load_taskset(path)
    assert ts.data.symbols == (f"csv:{STOOQ}/*.us.txt",)  # the config keeps the pattern
    got = sorted({(t.symbol, t.split, t.source) for t in ts})
    assert got == [
        ("AGG", "test", f"csv:{STOOQ}/agg.us.txt"),
        ("AGG", "train", f"csv:{STOOQ}/agg.us.txt"),
        ("DIA", "test", f"csv:{KAGGLE}/dia.us.txt"),
        ("SPY", "test", f"csv:{STOOQ}/spy.us.txt"),
        ("SPY", "train", f"csv:{STOOQ}/spy.us.txt"),
    ]
