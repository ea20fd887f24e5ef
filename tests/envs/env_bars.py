"""Synthetic bars for the env tests (no network, no bundled data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_metarl.data.bars import validate_bars


def random_walk_bars(
    n: int = 300,
    seed: int = 0,
    start: str = "2015-01-02",
    vol: float = 0.012,
    drift: float = 0.0003,
    price: float = 100.0,
) -> pd.DataFrame:
    """A geometric random walk with consistent open/high/low/close and positive volume."""
    rng = np.random.default_rng(seed)
    gaps = rng.normal(drift / 2, vol / 2, n)
    intra = rng.normal(drift / 2, vol, n)
    log_open = np.log(price) + np.cumsum(gaps + np.r_[0.0, intra[:-1]])
    opens = np.exp(log_open)
    closes = opens * np.exp(intra)
    highs = np.maximum(opens, closes) * np.exp(np.abs(rng.normal(0, vol / 3, n)))
    lows = np.minimum(opens, closes) * np.exp(-np.abs(rng.normal(0, vol / 3, n)))
    volume = rng.lognormal(15, 0.3, n)
    index = pd.bdate_range(start, periods=n, name="date")
    frame = pd.DataFrame(
        {"open": opens, "high": highs, "low": lows, "close": closes, "volume": volume},
        index=index,
    )
    return validate_bars(frame, source=f"random-walk-{seed}")[0]


def constant_bars(n: int = 120, price: float = 50.0, start: str = "2015-01-02") -> pd.DataFrame:
    """Every open, high, low and close equal to ``price``."""
    index = pd.bdate_range(start, periods=n, name="date")
    frame = pd.DataFrame(
        {c: np.full(n, price) for c in ("open", "high", "low", "close")}
        | {"volume": np.full(n, 1e6)},
        index=index,
    )
    return validate_bars(frame, source="constant")[0]
