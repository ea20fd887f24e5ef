"""Root pytest configuration: the notebook that starts Ray shares the Ray tests' xdist worker
(``--dist loadgroup``), so no two local Rays compete for the 2 cores at once."""

from __future__ import annotations

import pytest

RAY_NOTEBOOKS = frozenset({"06_sweeps_and_ray.ipynb"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in RAY_NOTEBOOKS:
            item.add_marker(pytest.mark.xdist_group("ray"))
