"""Size limits of the house style: small modules with one job, functions that fit on a screen.

A module under ``market_metarl`` has at most :data:`MAX_MODULE_LINES` lines; a function or method
at most :data:`MAX_FUNCTION_LINES` (``end_lineno - lineno + 1`` of its ``def``, so decorators do not
count but the docstring does). The one training loop may be longer, if it reads top to bottom.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "market_metarl"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

LONG_FUNCTIONS_ALLOWED = frozenset({"market_metarl.meta.trainer.train"})
"""The training loop: one long function that reads top to bottom, phases marked."""


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def dotted(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def function_lengths(source: str, module: str) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, lines)`` of every function and method in ``source``."""
    found: list[tuple[str, int, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    end = child.end_lineno or child.lineno
                    found.append((name, child.lineno, end - child.lineno + 1))
                walk(child, name)
            else:
                walk(child, prefix)

    walk(ast.parse(source), module)
    return found


def long_modules() -> dict[str, int]:
    sizes = {relative(p): len(p.read_text().splitlines()) for p in package_files()}
    return {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}


def long_functions() -> dict[str, str]:
    """``{qualified name: "path:line (N lines)"}`` of every function over the limit."""
    out = {}
    for path in package_files():
        for name, line, n in function_lengths(path.read_text(), dotted(path)):
            if n > MAX_FUNCTION_LINES:
                out[name] = f"{relative(path)}:{line} ({n} lines)"
    return out


def test_no_module_is_over_the_line_limit() -> None:
    new = long_modules()
    assert not new, "\n".join(
        f"{p}: {n} lines > {MAX_MODULE_LINES}; split it by job" for p, n in sorted(new.items())
    )


def test_no_function_is_over_the_line_limit() -> None:
    found = long_functions()
    new = {name: where for name, where in found.items() if name not in LONG_FUNCTIONS_ALLOWED}
    assert not new, "\n".join(
        f"{where} {name} > {MAX_FUNCTION_LINES} lines; split it into named steps"
        for name, where in sorted(new.items())
    )


def test_the_walk_measures_defs_without_decorators() -> None:
    source = "@property\ndef f(self):\n    return 1\n\nclass C:\n    def g(self):\n        pass\n"
    assert function_lengths(source, "m") == [("m.f", 2, 2), ("m.C.g", 6, 2)]
