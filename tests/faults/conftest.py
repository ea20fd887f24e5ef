"""Fixtures of the fault-injection tests: one warm fork server and one tiny run per session.

Per session, so per xdist worker under ``make test``: the kill tests and the disk tests share one
server and one trained run (distinct output names in one folder) instead of starting and training
one per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import TINY_TOML, TRAIN, ForkServer


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the session's commands run in, with the tiny config as ``tiny.toml``."""
    folder = tmp_path_factory.mktemp("faults")
    (folder / "tiny.toml").write_text(TINY_TOML)
    return folder


@pytest.fixture(scope="session")
def server(workdir: Path) -> Iterator[ForkServer]:
    """One fork server for the session, working in ``workdir``."""
    s = ForkServer(workdir)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def trained(server: ForkServer, workdir: Path) -> tuple[Path, float]:
    """A tiny pooled run, ``run`` in ``workdir``, trained once for the session; and its seconds."""
    code, seconds, _ = server.run([*TRAIN, "--out", "run"])
    assert code == 0
    return workdir / "run", seconds
