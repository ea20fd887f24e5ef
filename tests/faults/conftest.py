"""Fixtures of the fault-injection tests: one warm fork server and one tiny run per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import TINY_TOML, TRAIN, ForkServer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the module's commands run in, with the tiny config as ``tiny.toml``."""
    folder = tmp_path_factory.mktemp("faults")
    (folder / "tiny.toml").write_text(TINY_TOML)
    return folder


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[ForkServer]:
    """One fork server for the module, working in ``workdir``."""
    s = ForkServer(workdir)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def trained(server: ForkServer, workdir: Path) -> tuple[Path, float]:
    """A tiny pooled run, ``run`` in ``workdir``, trained once for the module; and its seconds."""
    code, seconds, _ = server.run([*TRAIN, "--out", "run"])
    assert code == 0
    return workdir / "run", seconds
