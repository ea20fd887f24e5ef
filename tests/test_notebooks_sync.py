"""The committed notebooks are what ``scripts/make_notebooks.py`` writes.

The walkthroughs are edited in the generator, never in the ``.ipynb`` files: this test regenerates
them into a temporary folder and compares cell types, ids and sources, and the notebook metadata
the generator writes (kernel, execution timeout). Outputs and metadata that Jupyter adds when a
person runs a notebook are ignored. To fix a failure, run ``python scripts/make_notebooks.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("notebooks")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_notebooks.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def cells(nb: Any) -> list[tuple[str, str, str]]:
    return [(c.cell_type, c.get("id", ""), c.source) for c in nb.cells]


def metadata_differences(generated: Any, committed: Any, where: str = "metadata") -> list[str]:
    """Keys the generator writes whose committed value differs (extra committed keys are fine)."""
    out = []
    for key, value in generated.items():
        if isinstance(value, dict) and isinstance(committed.get(key), dict):
            out += metadata_differences(value, committed[key], f"{where}.{key}")
        elif committed.get(key) != value:
            out.append(f"{where}.{key}: generator {value!r}, committed {committed.get(key)!r}")
    return out


def test_the_same_notebooks_exist(generated: Path) -> None:
    made = sorted(p.name for p in generated.glob("*.ipynb"))
    committed = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert made == committed, "run `python scripts/make_notebooks.py` (and delete stale ones)"


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_notebook_matches_the_generator(generated: Path, name: str) -> None:
    made = nbformat.read(generated / name, as_version=4)
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    problems = metadata_differences(made.metadata, committed.metadata)
    if cells(made) != cells(committed):
        diff = [
            f"cell {i}: {c[:2]} differs"
            for i, (m, c) in enumerate(zip(cells(made), cells(committed), strict=False))
            if m != c
        ]
        problems.append(
            f"cells differ ({len(made.cells)} generated, {len(committed.cells)} committed): "
            + "; ".join(diff[:5])
        )
    assert not problems, f"{name} is stale; run `python scripts/make_notebooks.py`:\n" + "\n".join(
        problems
    )
