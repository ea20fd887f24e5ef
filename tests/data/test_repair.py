"""Bad rows: refused by default, isolated ones dropped under repair = drop, non-finite never let in."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_metarl.cli import main
from market_metarl.data.bars import validate_bars
from market_metarl.data.repair import Repair, RepairPolicy
from market_metarl.data.sources import load_bars, load_bars_with_report
from market_metarl.types import DataError

REPAIR = Path(__file__).resolve().parents[1] / "fixtures" / "repair"
DATES = ["2020-09-01", "2020-09-02", "2020-09-03", "2020-09-04", "2020-09-08", "2020-09-09"]
DATES += ["2020-09-10", "2020-09-11"]


def dates(bars: pd.DataFrame) -> list[str]:
    return [d.date().isoformat() for d in bars.index]


def test_one_bad_row_is_refused_by_default_saying_drop_would_take_it() -> None:
    with pytest.raises(DataError) as info:
        load_bars(f"csv:{REPAIR / 'one_bad_row.csv'}")
    message = str(info.value)
    assert "non-positive price on 2020-09-03 (columns open = 0, low = 0)" in message
    assert 'this bad row is isolated: [data] repair = "drop"' in message
    assert "would drop it" in message


def test_one_bad_row_is_dropped_and_recorded_under_drop() -> None:
    source = f"csv:{REPAIR / 'one_bad_row.csv'}"
    bars, report = load_bars_with_report(f"{source}?repair=drop")
    assert dates(bars) == [d for d in DATES if d != "2020-09-03"]
    assert report.rows == 7
    # the day is gone, not filled: the next bar is the real 2020-09-04 bar
    assert bars.loc["2020-09-04", "open"] == pytest.approx(346.130005)
    assert report.repairs == [
        Repair(source, "2020-09-03", "open", "0", "non-positive price"),
        Repair(source, "2020-09-03", "low", "0", "non-positive price"),
    ]
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("dropped the bar of 2020-09-03: open = 0")


def test_non_adjacent_bad_rows_of_any_kind_are_dropped() -> None:
    source = f"csv:{REPAIR / 'two_apart.csv'}?repair=drop"
    bars, report = load_bars_with_report(source)
    assert dates(bars) == [d for d in DATES if d not in ("2020-09-02", "2020-09-09")]
    assert [(r.date, r.column, r.value, r.reason) for r in report.repairs] == [
        ("2020-09-02", "high", "343.43", "high < low, low = 353.429993"),
        ("2020-09-09", "close", "inf", "non-finite value"),
    ]
    assert [w.split(":")[0] for w in report.warnings] == [
        "dropped the bar of 2020-09-02",
        "dropped the bar of 2020-09-09",
    ]


def test_adjacent_bad_rows_are_refused_even_under_drop() -> None:
    for option in ("", "?repair=drop"):
        with pytest.raises(DataError) as info:
            load_bars(f"csv:{REPAIR / 'two_adjacent.csv'}{option}")
        message = str(info.value)
        assert "non-positive price on 2020-09-03 (column close = 0), 2020-09-04" in message
        assert (
            'repair = "drop" would not apply: the bad rows of 2020-09-03 and 2020-09-04 are adjacent'
            in message
        )


def test_more_bad_rows_than_the_maximum_are_refused_saying_how_many() -> None:
    path = REPAIR / "four_apart.csv"
    with pytest.raises(DataError) as info:
        load_bars(f"csv:{path}?repair=drop")
    message = str(info.value)
    assert "2020-09-01 (column close = 0), 2020-09-03 (column close = 0), 2020-09-08" in message
    assert "and 1 more" in message
    assert "4 bad rows, more than repair_max_rows = 3" in message
    bars = load_bars(f"csv:{path}?repair=drop&repair_max_rows=4")
    assert dates(bars) == ["2020-09-02", "2020-09-04", "2020-09-09", "2020-09-11"]


def test_bad_rows_of_several_kinds_are_counted_together() -> None:
    with pytest.raises(DataError) as info:
        load_bars(f"csv:{REPAIR / 'two_apart.csv'}")
    message = str(info.value)
    assert message.startswith(f"csv:{REPAIR / 'two_apart.csv'}: non-finite value on 2020-09-09")
    assert "2 bad rows in all, on 2020-09-02 (column high = 343.43 (low = 353.429993))" in message
    assert "these 2 bad rows are isolated" in message


NONFINITE = {
    "inf.csv": "non-finite value on 2020-09-03 (column close = inf)",
    "minus_inf.csv": "non-finite value on 2020-09-04 (column low = -inf)",
    "infinity.csv": "non-finite value on 2020-09-08 (column high = inf)",
    "nan.csv": "missing values (NaN) on 2020-09-09 (column open = nan)",
    "nan_upper.csv": "missing values (NaN) on 2020-09-09 (column open = nan)",
    "overflow.csv": "non-finite value on 2020-09-10 (column close = inf)",
    "volume_overflow.csv": "non-finite value on 2020-09-02 (column volume = -inf)",
}


def test_every_nonfinite_fixture_has_a_case() -> None:
    assert sorted(p.name for p in (REPAIR / "nonfinite").iterdir()) == sorted(NONFINITE)


@pytest.mark.parametrize("name", sorted(NONFINITE))
def test_nonfinite_numbers_are_refused_with_date_and_column_and_no_warning(name: str) -> None:
    source = f"csv:{REPAIR / 'nonfinite' / name}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as info:
            load_bars(source)
        assert str(info.value).startswith(f"{source}: {NONFINITE[name]}; ")
        # an isolated non-finite row is dropped like any bad row
        bars, report = load_bars_with_report(f"{source}?repair=drop")
    assert len(bars) == 7 and np.isfinite(bars.to_numpy()).all()
    assert len(report.repairs) == 1


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_nonfinite_values_in_a_frame_are_refused_without_warnings(value: float) -> None:
    frame = pd.DataFrame(
        {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100.0},
        index=pd.bdate_range("2021-01-04", periods=6),
    )
    frame.iloc[2, 1] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"on 2021-01-06 \(column high = (-?inf|nan)\)"):
            validate_bars(frame, source="mem")
        bars, _ = validate_bars(frame, source="mem", repair=RepairPolicy("drop"))
    assert len(bars) == 5


def test_drop_keeps_min_rows_honest() -> None:
    frame = pd.DataFrame(
        {"open": [10.0, 0.0], "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1.0},
        index=pd.bdate_range("2021-01-04", periods=2),
    )
    with pytest.raises(DataError, match=r"1 row\(s\), at least 2 needed"):
        validate_bars(frame, repair=RepairPolicy("drop"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?repair=fix", "repair must be one of refuse, drop, got 'fix'"),
        ("?repair=drop&repair_max_rows=0", "repair_max_rows must be >= 1, got 0"),
        ("?repair=drop&repair_max_rows=x", "repair_max_rows='x'"),
        ("?repiar=drop", "unknown option(s) repiar; valid: symbol, name, repair"),
    ],
)
def test_bad_repair_options_are_errors(query: str, message: str) -> None:
    with pytest.raises(DataError) as info:
        load_bars(f"csv:{REPAIR / 'one_bad_row.csv'}{query}")
    assert message in str(info.value)


def test_data_show_lists_the_dropped_rows(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(["data", "show", f"csv:{REPAIR / 'two_apart.csv'}?repair=drop"])
    out = capsys.readouterr().out
    assert code == 0
    assert "rows     6" in out
    dropped = [line for line in out.splitlines() if line.startswith("warning  dropped the bar")]
    assert [line.split(":")[0] for line in dropped] == [
        "warning  dropped the bar of 2020-09-02",
        "warning  dropped the bar of 2020-09-09",
    ]
