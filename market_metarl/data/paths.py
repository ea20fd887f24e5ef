"""Where the data lives: the bundled data directory and the download cache.

Pure ``pathlib`` (no pandas), so ``market-metarl data list`` answers without importing the
data stack.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MARKET_METARL_DATA"
"""Environment variable that points the bundled loader at another data directory."""

CACHE_DIR_ENV = "MARKET_METARL_CACHE"
"""Environment variable that points the download cache elsewhere."""

DATA_DIR: Path = Path(__file__).resolve().parents[2] / "data"
"""The repository's top-level ``data/`` directory (used when ``MARKET_METARL_DATA`` is unset)."""


def data_dir() -> Path:
    """The directory bundled data is read from.

    Returns:
        ``$MARKET_METARL_DATA`` when set and non-empty, else :data:`DATA_DIR`. Read on every call,
        so changing the variable takes effect at once.
    """
    override = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(override).expanduser() if override else DATA_DIR


def cache_dir() -> Path:
    """Download cache: ``$MARKET_METARL_CACHE`` or ``<data dir>/cache``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else data_dir() / "cache"


def list_cached() -> list[tuple[str, Path]]:
    """Symbols in the yfinance download cache and their files."""
    root = cache_dir() / "yfinance"
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.glob("*.parquet")):
        name = path.stem.rsplit("_", 2)[0]  # strip the _<interval>_<adj|raw> key
        out.append(("^" + name[4:] if name.startswith("IDX_") else name, path))
    return out
