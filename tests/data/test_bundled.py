"""Known answers for the bundled real data in data/ (reads only data/, never ../shared)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.data import bundled, paths
from market_metarl.data.bundled import bundled_symbols, load_bundled, read_manifest
from market_metarl.types import BAR_COLUMNS, DataError

REQUIRED = ("SPY", "QQQ", "IWM", "AAPL", "IBM", "BAC", "AIG", "GOOG", "SP500", "NASDAQ", "VIX")

SPLIT_DATES = [
    ("AAPL", "2000-06-21"),
    ("AAPL", "2005-02-28"),
    ("AAPL", "2014-06-09"),
    ("AAPL", "2020-08-31"),
    ("AIG", "2009-07-01"),
    ("IWM", "2005-06-09"),
    ("EEM", "2005-06-09"),
    ("EEM", "2008-07-24"),
    ("BAC", "2004-08-30"),
    ("IBM", "1999-05-27"),
    ("USO", "2020-04-29"),
    ("GOOGL", "2014-04-03"),
]


@pytest.fixture(autouse=True)
def _default_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)


def _overnight(frame: pd.DataFrame) -> pd.Series:
    moves = np.log(frame["open"].to_numpy()[1:] / frame["close"].to_numpy()[:-1])
    return pd.Series(moves, index=frame.index[1:])


def test_default_dir_is_repo_data() -> None:
    assert paths.data_dir() == Path(__file__).resolve().parents[2] / "data"


def test_manifest_files_match_hash_and_rows() -> None:
    manifest = read_manifest()
    assert list(manifest.columns) == list(bundled.MANIFEST_COLUMNS)
    assert len(manifest) >= len(REQUIRED)
    for row in manifest.to_dict(orient="records"):
        name, symbol = str(row["file"]), str(row["symbol"])
        path = paths.DATA_DIR / name
        assert path.is_file(), name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"], name
        assert name == f"{symbol.lower()}.parquet"
        assert row["licence"] in {"Apache-2.0", "NCSA", "ODC-PDDL-1.0"}
        frame = pd.read_parquet(path)
        assert len(frame) == row["rows"]
        assert str(frame["date"].min().date()) == row["first_date"]
        assert str(frame["date"].max().date()) == row["last_date"]


def test_data_dir_is_small() -> None:
    total = sum(p.stat().st_size for p in paths.DATA_DIR.glob("*.parquet"))
    assert total < 3_500_000


@pytest.mark.parametrize("symbol", REQUIRED)
def test_required_symbols_load(symbol: str) -> None:
    assert symbol in bundled_symbols()
    bars, report = load_bundled(symbol)
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert isinstance(bars.index, pd.DatetimeIndex) and bars.index.tz is None
    assert bars.index.name == "date"
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert report.source == f"bundled:{symbol}"
    assert report.rows == len(bars) > 1000


def test_symbol_is_case_insensitive() -> None:
    lower, _ = load_bundled("spy")
    upper, _ = load_bundled("SPY")
    pd.testing.assert_frame_equal(lower, upper)


@pytest.mark.parametrize(("symbol", "day"), SPLIT_DATES)
def test_no_jump_on_split_dates(symbol: str, day: str) -> None:
    bars, _ = load_bundled(symbol)
    date = pd.Timestamp(day)
    assert date in bars.index
    assert abs(_overnight(bars).loc[date]) < 0.25


def test_qqq_starts_after_the_qqqq_hole() -> None:
    bars, _ = load_bundled("QQQ")
    assert bars.index[0] == pd.Timestamp("2011-03-23")
    assert bars.index.to_series().diff().dt.days.max() <= 7
    assert _overnight(bars).abs().max() < 0.25


def test_pre_listing_rows_dropped() -> None:
    uso, _ = load_bundled("USO")
    goog, _ = load_bundled("GOOG")
    assert uso.index[0] >= pd.Timestamp("2006-04-10")
    assert goog.index[0] >= pd.Timestamp("2014-03-27")
    # The old class-A prices (~1135) must not sit in front of the class-C series (~570).
    assert goog["close"].iloc[:5].max() < 700


def test_adjusted_spot_values() -> None:
    spy, _ = load_bundled("SPY")
    assert spy.loc["2021-03-31", "close"] == pytest.approx(396.33, abs=1e-9)
    aapl, _ = load_bundled("AAPL")
    # 2021-03-31 raw close 122.15, factor 1; before the 4:1 split of 2020-08-31 prices are / 4.
    assert aapl.loc["2021-03-31", "close"] == pytest.approx(122.15, abs=1e-9)
    assert aapl.loc["2020-08-28", "close"] == pytest.approx(499.23 * 0.25 * 0.9967882, rel=1e-9)


def test_vix_is_consistent_and_volume_free() -> None:
    vix, _ = load_bundled("VIX")
    assert (vix["volume"] == 0.0).all()
    assert (vix["high"] >= vix[["open", "close"]].max(axis=1)).all()
    assert (vix["low"] <= vix[["open", "close"]].min(axis=1)).all()


@pytest.mark.parametrize("symbol", ["SPY", "AAPL", "AIG", "BAC", "IBM", "IWM", "EEM", "GOOGL"])
def test_no_bad_prints_left(symbol: str) -> None:
    # Lean's raw files carry decimal slips (AAPL low 0.33 on a 5.7 stock, IWM high doubled...);
    # the build repairs them. Real wide days (AIG 2008, BAC 2009, the 2010 flash crash) fit
    # within these bounds of the open, close and previous close.
    bars, _ = load_bundled(symbol)
    around = bars[["open", "close"]].assign(prev_close=bars["close"].shift(1))
    body_high = around.max(axis=1)
    body_low = around.min(axis=1)
    assert (bars["high"] <= 1.6 * body_high).all()
    assert (bars["low"] >= 0.6 * body_low).all()


def test_unknown_symbol_lists_available() -> None:
    with pytest.raises(DataError, match="available") as info:
        load_bundled("NOPE")
    assert "SPY" in str(info.value) and "VIX" in str(info.value)


def test_corrupt_file_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "data"
    shutil.copytree(paths.DATA_DIR, copy, ignore=shutil.ignore_patterns("cache"))
    target = copy / "spy.parquet"
    payload = bytearray(target.read_bytes())
    middle = len(payload) // 2
    payload[middle : middle + 8] = bytes(b ^ 0xFF for b in payload[middle : middle + 8])
    target.write_bytes(bytes(payload))
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(copy))
    assert paths.data_dir() == copy
    load_bundled("IBM")  # untouched files still load from the copy
    with pytest.raises(DataError, match="make data") as info:
        load_bundled("SPY")
    assert "corrupt" in str(info.value)


def test_missing_manifest_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match="make data"):
        bundled_symbols()
