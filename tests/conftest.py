"""Shared fixtures: the fixture files folder and an isolated download cache."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    """``tests/fixtures`` (small real-data files: ``layouts/``, ``malformed/``, ``oddities/``)."""
    return FIXTURES


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``MARKET_METARL_CACHE`` at an empty folder, so no test sees or writes a real cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MARKET_METARL_CACHE", str(path))
    return path
