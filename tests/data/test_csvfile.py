"""CSV layouts are recognised without being told which, with known values from real rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.data.csvfile import read_csv_bars
from market_metarl.data.sources import load_bars
from market_metarl.types import BAR_COLUMNS, DataError

LAYOUTS = Path(__file__).resolve().parents[1] / "fixtures" / "layouts"

# file -> (layout note, rows, first date, last date)
LAYOUT_CASES = {
    "yahoo_spy.csv": ("yahoo (OHLC adjusted by Adj Close / Close)", 8, "2020-09-01", "2020-09-11"),
    "stooq_spy.txt": ("stooq", 7, "2020-09-01", "2020-09-10"),
    "lower_spy.csv": ("date,open,high,low,close,volume", 6, "2020-08-21", "2020-08-28"),
    "timestamp_iso_spy.csv": ("timestamp", 5, "2020-09-01", "2020-09-08"),
    "timestamp_epoch_spy.csv": ("timestamp", 5, "2020-09-01", "2020-09-08"),
    "timestamp_epoch_ms_spy.csv": ("timestamp", 5, "2020-09-01", "2020-09-08"),
}


@pytest.mark.parametrize("name", sorted(LAYOUT_CASES))
def test_layout_is_recognised(name: str) -> None:
    layout, rows, first, last = LAYOUT_CASES[name]
    bars, report = read_csv_bars(LAYOUTS / name)
    assert report.notes[0] == f"layout: {layout}"
    assert (len(bars), report.rows) == (rows, rows)
    assert bars.index[0] == pd.Timestamp(first)
    assert bars.index[-1] == pd.Timestamp(last)
    assert tuple(bars.columns) == BAR_COLUMNS
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert bars.index.name == "date" and bars.index.tz is None


def test_yahoo_ohlc_is_scaled_by_adj_close_over_close() -> None:
    bars = load_bars(f"csv:{LAYOUTS / 'yahoo_spy.csv'}")
    first = bars.loc["2020-09-01"]
    factor = 349.703522 / 352.600006
    assert first["close"] == pytest.approx(349.703522, rel=1e-12)
    assert first["open"] == pytest.approx(350.209991 * factor, rel=1e-12)
    assert first["high"] == pytest.approx(352.709991 * factor, rel=1e-12)
    assert first["low"] == pytest.approx(349.239990 * factor, rel=1e-12)
    assert first["volume"] == 54999300.0
    assert bars.loc["2020-09-11", "close"] == pytest.approx(331.315796, rel=1e-12)


def test_stooq_dates_and_values() -> None:
    bars, report = read_csv_bars(LAYOUTS / "stooq_spy.txt")
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert list(bars.index.strftime("%Y-%m-%d")) == [
        "2020-09-01",
        "2020-09-02",
        "2020-09-03",
        "2020-09-04",
        "2020-09-08",
        "2020-09-09",
        "2020-09-10",
    ]
    row = bars.loc["2020-09-03"]
    assert (row["open"], row["high"], row["low"], row["close"]) == (
        332.325,
        332.795,
        319.911,
        322.524,
    )
    assert row["volume"] == 158502400.0
    assert "symbol: SPY" in report.notes


def test_lower_case_layout_drops_the_unnamed_index_column() -> None:
    bars = load_bars(f"csv:{LAYOUTS / 'lower_spy.csv'}")
    assert tuple(bars.columns) == BAR_COLUMNS
    assert bars.loc["2020-08-24", "low"] == 339.4504
    assert bars.loc["2020-08-28", "close"] == 350.58


def test_timestamp_layouts_agree_with_the_unadjusted_yahoo_rows() -> None:
    raw = pd.read_csv(LAYOUTS / "yahoo_spy.csv", index_col="Date", parse_dates=True).iloc[:5]
    expected = raw[["Open", "High", "Low", "Close", "Volume"]].astype("float64")
    expected.columns = list(BAR_COLUMNS)
    expected.index.name = "date"
    for name in ("timestamp_iso_spy.csv", "timestamp_epoch_spy.csv", "timestamp_epoch_ms_spy.csv"):
        bars, _ = read_csv_bars(LAYOUTS / name)
        pd.testing.assert_frame_equal(bars, expected, check_freq=False, check_index_type=False)


def test_ticker_file_needs_a_symbol_and_names_the_choices() -> None:
    with pytest.raises(DataError, match=r"several symbols \(AAPL, MSFT\).*\?symbol=AAPL"):
        load_bars(f"csv:{LAYOUTS / 'ticker_aapl_msft.csv'}")


def test_ticker_file_symbol_option_selects_rows_case_insensitively() -> None:
    bars = load_bars(f"csv:{LAYOUTS / 'ticker_aapl_msft.csv'}?symbol=msft")
    assert len(bars) == 5
    assert bars.loc["2000-03-01", "close"] == pytest.approx(30.225709797294, rel=1e-12)
    assert bars.loc["2000-03-07", "open"] == pytest.approx(96.12 * 30.911371752832 / 92.87)


def test_ticker_file_unknown_symbol_lists_the_present_ones() -> None:
    with pytest.raises(DataError, match=r"no rows for symbol IBM; the file has AAPL, MSFT"):
        read_csv_bars(LAYOUTS / "ticker_aapl_msft.csv", symbol="IBM")


def test_gzip_file_reads_like_the_plain_one(tmp_path: Path) -> None:
    packed = tmp_path / "spy.csv.gz"
    packed.write_bytes(gzip.compress((LAYOUTS / "yahoo_spy.csv").read_bytes()))
    plain, _ = read_csv_bars(LAYOUTS / "yahoo_spy.csv")
    bars, _ = read_csv_bars(packed)
    pd.testing.assert_frame_equal(bars, plain)


def test_semicolon_separated_file_is_read(tmp_path: Path) -> None:
    text = (LAYOUTS / "lower_spy.csv").read_text().replace(",", ";")
    path = tmp_path / "semi.csv"
    path.write_text(text)
    plain, _ = read_csv_bars(LAYOUTS / "lower_spy.csv")
    bars, _ = read_csv_bars(path)
    pd.testing.assert_frame_equal(bars, plain)


def test_missing_adj_close_cell_is_an_error_not_silently_unadjusted(tmp_path: Path) -> None:
    lines = (LAYOUTS / "yahoo_spy.csv").read_text().splitlines()
    cells = lines[3].split(",")  # 2020-09-03
    cells[5] = ""
    lines[3] = ",".join(cells)
    path = tmp_path / "hole.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"Adj Close is missing, non-finite or not positive on 2020-09-03"
    ):
        read_csv_bars(path)


def test_zero_close_with_adj_close_is_reported_as_non_positive(tmp_path: Path) -> None:
    lines = (LAYOUTS / "yahoo_spy.csv").read_text().splitlines()
    cells = lines[2].split(",")  # 2020-09-02
    cells[4] = "0"
    lines[2] = ",".join(cells)
    path = tmp_path / "zero.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"non-positive price on 2020-09-02"):
        read_csv_bars(path)


def test_stooq_bad_date_names_the_file_row_and_the_date_cell(tmp_path: Path) -> None:
    lines = (LAYOUTS / "stooq_spy.txt").read_text().splitlines()
    lines[3] = lines[3].replace("20200903", "20200931")
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"unparseable date at row 4 \('20200931'\)"):
        read_csv_bars(path)


def test_no_date_column_is_an_error_naming_the_accepted_names(tmp_path: Path) -> None:
    path = tmp_path / "nodate.csv"
    path.write_text("day,open,high,low,close\n1,2,3,1,2\n2,2,3,1,2\n")
    with pytest.raises(DataError, match=r"no date column \(found day, open.*Date, date, <DATE>"):
        read_csv_bars(path)


def test_binary_file_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "spy.csv"
    path.write_bytes(b"PAR1\x00\x15\x04\x15\x80\x01" + bytes(range(256)))
    with pytest.raises(DataError, match="binary file, not a CSV table"):
        read_csv_bars(path)


def test_single_column_text_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("These are my notes\nabout SPY\nnothing tabular here\n")
    with pytest.raises(DataError, match=r"not a table of bars \(found 1 column\)"):
        read_csv_bars(path)


def test_missing_file_names_the_path() -> None:
    with pytest.raises(DataError, match=r"csv:no/such/file.csv: no such file"):
        load_bars("csv:no/such/file.csv")


def test_adjusted_yahoo_bars_keep_ohlc_consistent() -> None:
    bars = load_bars(f"csv:{LAYOUTS / 'yahoo_spy.csv'}")
    values = bars[["open", "high", "low", "close"]].to_numpy()
    assert (values[:, 1] >= values.max(axis=1) - 1e-9).all()
    assert (values[:, 2] <= values.min(axis=1) + 1e-9).all()
    assert np.isfinite(values).all()
