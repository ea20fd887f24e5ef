"""Shared pieces of the backtest tests: synthetic bars and writing them as a CSV source."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def synthetic_bars(seed: int = 7, days: int = 400) -> pd.DataFrame:
    """Bars of a synthetic symbol the run never saw."""
    from market_metarl.data.sources import load_bars

    return load_bars(f"synthetic:ar-regimes?seed={seed}&tasks={days // 80 + 1}&days=80").iloc[:days]


def write_csv(bars: pd.DataFrame, path: Path) -> str:
    """Write bars in the lower-case ``date,open,high,low,close,volume`` layout; return the spec."""
    frame = bars.reset_index()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False)
    return f"csv:{path}"
