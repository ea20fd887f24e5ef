"""Bars validation: every malformed case is a real file, and each error says what, where and how."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.data.bars import split_suspects, validate_bars
from market_metarl.data.sources import load_bars, load_bars_with_report
from market_metarl.types import BAR_COLUMNS, DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MALFORMED = FIXTURES / "malformed"

# file -> (what is wrong, where it is, how to fix it): each must appear in the message.
MALFORMED_CASES = {
    "missing_column.csv": ("missing column(s) low", "found date, open, high, close", "need"),
    "unparseable_date.csv": ("unparseable date", "row 4 ('2020-09-31')", "YYYY-MM-DD"),
    "duplicate_date.csv": ("duplicate dates", "2020-09-02", "keep one row per date"),
    "nonpositive_price.csv": ("non-positive price", "2020-09-03", "must be > 0"),
    "high_below_low.csv": ("high < low", "2020-09-04", "check the column order"),
    "close_outside_range.csv": ("close outside [low, high]", "2020-09-08", "correct those bars"),
    "nan_hole.csv": ("missing values (NaN)", "2020-09-03", "fill or delete"),
    "non_numeric.csv": ("non-numeric", "column open", "2020-09-03"),
    "empty.csv": ("the file is empty", "csv:", "header row"),
    "header_only.csv": ("header only", "no data rows", "csv:"),
    "too_few_rows.csv": ("1 row(s)", "at least 2 needed", "longer date range"),
    "not_a_table.csv": ("not a readable CSV table", "csv:", "expected a header like Date,Open"),
}


def test_every_malformed_fixture_has_a_case() -> None:
    assert sorted(p.name for p in MALFORMED.iterdir()) == sorted(MALFORMED_CASES)


@pytest.mark.parametrize("name", sorted(MALFORMED_CASES))
def test_malformed_file_raises_data_error_naming_problem_and_place(name: str) -> None:
    path = MALFORMED / name
    with pytest.raises(DataError) as info:
        load_bars(f"csv:{path}")
    message = str(info.value)
    assert message.startswith(f"csv:{path}: "), message
    for part in MALFORMED_CASES[name]:
        assert part in message, f"{part!r} not in {message!r}"
    assert "\n" not in message


def test_unsorted_rows_are_sorted_with_a_note() -> None:
    bars, report = load_bars_with_report(f"csv:{FIXTURES / 'oddities' / 'unsorted_spy.csv'}")
    assert bars.index.is_monotonic_increasing
    assert [d.date().isoformat() for d in bars.index] == [
        "2020-09-01",
        "2020-09-02",
        "2020-09-03",
        "2020-09-04",
        "2020-09-08",
    ]
    # Rows move with their dates: 2020-09-03's Adj Close is 342.552765.
    assert bars.loc["2020-09-03", "close"] == pytest.approx(342.552765)
    assert any("sorted by date" in n for n in report.notes)


def test_unadjusted_split_is_warned_with_its_date() -> None:
    # AAPL's 4:1 split on 2020-08-31, raw (unadjusted) prices from QuantConnect Lean.
    _, report = load_bars_with_report(f"csv:{FIXTURES / 'oddities' / 'aapl_unadjusted_split.csv'}")
    assert len(report.warnings) == 1
    warning = report.warnings[0]
    assert "unadjusted split" in warning
    assert "2020-08-31" in warning
    assert "2020-09-03" not in warning and "2020-09-01" not in warning


def _bars(closes: list[float], opens: list[float] | None = None) -> pd.DataFrame:
    close = np.asarray(closes, dtype=float)
    open_ = np.asarray(opens if opens is not None else closes, dtype=float)
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": 1000.0,
        },
        index=pd.bdate_range("2021-01-04", periods=len(close)),
    )


def test_overnight_crash_that_recovers_is_not_a_split() -> None:
    closes = [100.0, 101.0, 55.0, 98.0, 99.0, 100.0, 101.0, 102.0]
    opens = [100.0, 100.5, 50.0, 60.0, 98.0, 99.0, 100.0, 101.0]
    assert split_suspects(_bars(closes, opens)) == []


def test_halving_without_recovery_is_a_split_suspect() -> None:
    closes = [100.0, 101.0, 50.0, 51.0, 50.5, 50.0, 51.0, 52.0, 51.5]
    opens = [100.0, 100.5, 50.5, 50.0, 51.0, 50.5, 50.0, 51.0, 52.0]
    bars = _bars(closes, opens)
    assert split_suspects(bars) == [bars.index[2]]


def test_clean_frame_comes_back_canonical() -> None:
    raw = _bars([10.0, 11.0, 12.0])[["close", "low", "high", "open", "volume"]]
    raw.columns = ["Close", "Low", "High", "Open", "Volume"]
    raw["volume"] = raw.pop("Volume").astype("int64")
    raw.index = raw.index + pd.Timedelta(hours=16)
    bars, report = validate_bars(raw, source="mem")
    assert tuple(bars.columns) == BAR_COLUMNS
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert bars.index.name == "date" and bars.index.tz is None
    assert (bars.index == bars.index.normalize()).all()
    assert (report.rows, report.first, report.last) == (3, bars.index[0], bars.index[-1])
    assert report.notes == [] and report.warnings == []


def test_timezone_aware_dates_become_naive_with_a_note() -> None:
    raw = _bars([10.0, 11.0, 12.0])
    raw.index = pd.DatetimeIndex(raw.index).tz_localize("UTC")
    bars, report = validate_bars(raw)
    assert isinstance(bars.index, pd.DatetimeIndex) and bars.index.tz is None
    assert bars.index[0] == pd.Timestamp("2021-01-04")
    assert any("timezone" in n for n in report.notes)


def test_missing_volume_becomes_zero_with_a_note() -> None:
    bars, report = validate_bars(_bars([10.0, 11.0]).drop(columns="volume"))
    assert (bars["volume"] == 0.0).all()
    assert any("no volume column" in n for n in report.notes)


def test_open_outside_range_widens_the_range_with_a_note() -> None:
    raw = _bars([10.0, 11.0, 12.0])
    raw.loc[raw.index[1], "open"] = 20.0
    bars, report = validate_bars(raw)
    assert bars["high"].iloc[1] == 20.0
    assert any("open outside [low, high] on 2021-01-05" in n for n in report.notes)


def test_negative_volume_is_an_error_with_its_date() -> None:
    raw = _bars([10.0, 11.0, 12.0])
    raw.loc[raw.index[2], "volume"] = -5.0
    with pytest.raises(DataError, match=r"negative volume on 2021-01-06"):
        validate_bars(raw)


def test_many_bad_rows_are_summarised() -> None:
    raw = _bars([10.0] * 8)
    raw["close"] = raw["high"] * 2
    with pytest.raises(DataError) as info:
        validate_bars(raw)
    message = str(info.value)
    assert (
        "close outside [low, high] on 2021-01-04 (column close = 20.2 (low = 9.9, high = 10.1))"
        in message
    )
    assert "2021-01-05 (column close = 20.2" in message
    assert "2021-01-06 (column close = 20.2 (low = 9.9, high = 10.1)) and 5 more" in message
    assert 'repair = "drop" would not apply: 8 bad rows, more than repair_max_rows = 3' in message


def test_min_rows_is_enforced() -> None:
    with pytest.raises(DataError, match=r"3 row\(s\), at least 10 needed"):
        validate_bars(_bars([10.0, 11.0, 12.0]), min_rows=10)


def test_empty_frame_is_an_error() -> None:
    with pytest.raises(DataError, match="no rows"):
        validate_bars(_bars([10.0]).iloc[:0])


def test_non_date_index_is_an_error() -> None:
    raw = _bars([10.0, 11.0]).reset_index(drop=True)
    raw.index = pd.Index(["yesterday", "today"])
    with pytest.raises(DataError, match="not made of dates"):
        validate_bars(raw)


def test_validation_does_not_mutate_its_input() -> None:
    raw = _bars([12.0, 10.0, 11.0])
    raw.index = raw.index[::-1]
    before = raw.copy()
    validate_bars(raw)
    pd.testing.assert_frame_equal(raw, before)
