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


RAY_NOTEBOOKS = frozenset({"06_sweeps_and_ray.ipynb"})
"""Notebooks that start a local Ray: they share the Ray tests' xdist worker (``--dist
loadgroup``), so no two local Rays compete for the 2 cores at once (``make test`` collects tests
and notebooks together, so this hook sees the notebooks too)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in RAY_NOTEBOOKS:
            item.add_marker(pytest.mark.xdist_group("ray"))


FAULT_COUNTS = "fault_counts"
"""User property of a fault test's counts line (``tests/faults/fault_helpers.Counts.publish``)."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print each fault test's counts (kills, reruns, equal results) after the run.

    Here, in the root conftest, because under ``pytest -n 2`` only this summary's process (the
    xdist controller) prints, and it loads this file but not ``tests/faults/conftest.py``.
    """
    lines = [
        str(value)
        for key in ("passed", "failed")
        for report in terminalreporter.stats.get(key, [])
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", [])
        if name == FAULT_COUNTS
    ]
    if lines:
        terminalreporter.write_sep("=", "fault counts")
        for line in sorted(lines):
            terminalreporter.write_line(line)
