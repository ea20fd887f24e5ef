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
    timing = _fault_suite_timing(terminalreporter)
    if lines or timing:
        terminalreporter.write_sep("=", "fault counts")
        for line in sorted(lines):
            terminalreporter.write_line(line)
        if timing:
            terminalreporter.write_line(timing)


def _fault_suite_timing(terminalreporter: pytest.TerminalReporter) -> str | None:
    """The fault suite's time in this run: from its first test's start to its last test's end
    (wall, with whatever ran beside it), and the sum of its tests' durations (setup included).

    Issue 15's budget is 3 minutes on 2 cores; this line puts the figure in every CI log.
    """
    reports = [
        report
        for key in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(key, [])
        if str(getattr(report, "nodeid", "")).startswith("tests/faults/")
        and hasattr(report, "start")
    ]
    if not reports:
        return None
    wall = max(r.stop for r in reports) - min(r.start for r in reports)
    busy = sum(r.duration for r in reports)
    tests = len({r.nodeid for r in reports})
    return (
        f"fault suite: {tests} tests, {wall:.1f} s from the first start to the last end, "
        f"{busy:.1f} s of test time in all"
    )
