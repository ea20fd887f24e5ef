"""Data flows one way: data -> envs -> meta -> backtest -> live (imports walked with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "market_metarl"
LAYERS = ("data", "envs", "meta", "backtest", "live")
"""Left to right: a layer may import itself and layers to its left."""
BASE = (
    "types",
    "seeding",
    "config",
    "parallel",
    "chunks",
    "procpool",
    "fileio",
    "stats",
    "_version",
)
"""Shared records and utilities: they import no layer."""
FREE = ("cli", "api", "demo", "__main__", "__init__", "_gym_hook")
"""Entry points (and the package's own ``__init__``): may import anything."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module an ``import``/``from`` anywhere in ``source`` names (functions included)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from market_metarl import envs` imports the envs layer too.
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def owner(module: str) -> str | None:
    """The layer or top-level module of a ``market_metarl...`` name (None outside the package)."""
    parts = module.split(".")
    if parts[0] != "market_metarl":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def violations(path: Path, source: str | None = None) -> list[str]:
    module = module_name(path)
    text = path.read_text() if source is None else source
    here = owner(module)
    problems = []
    for line, target in imported_modules(text, module, path.name == "__init__.py"):
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        if target.split(".")[0] == "backtrader" and here != "backtest":
            problems.append(f"{where} imports backtrader; only market_metarl/backtest/ may")
        dep = owner(target)
        if dep is None or dep == here or here in FREE:
            continue
        if here in BASE and dep in LAYERS:
            problems.append(f"{where}: {module} ({here} imports no layer) imports {target}")
        elif here in LAYERS and dep in LAYERS and LAYERS.index(dep) > LAYERS.index(here):
            problems.append(f"{where}: layer {here} imports {target}, a layer to its right")
        elif here in LAYERS and dep in FREE and dep != "__init__":
            problems.append(f"{where}: layer {here} imports the entry point {target}")
    return problems


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_layer() -> None:
    known = set(LAYERS) | set(BASE) | set(FREE)
    unknown = sorted({str(owner(module_name(p))) for p in package_files()} - known)
    assert not unknown, f"classify {unknown} in tests/test_layers.py (LAYERS, BASE or FREE)"


def test_no_layer_imports_a_layer_to_its_right() -> None:
    problems = [v for p in package_files() for v in violations(p)]
    assert not problems, "\n".join(problems)


def test_the_walk_sees_every_layer_module() -> None:
    layers_seen = {owner(module_name(p)) for p in package_files()}
    assert {"data", "types", "config", "cli"} <= layers_seen


@pytest.mark.parametrize(
    ("file", "code"),
    [
        ("data/tasks.py", "from market_metarl.envs import spec"),
        ("data/tasks.py", "def f():\n    import market_metarl.meta.adapt\n"),
        ("data/tasks.py", "from ..envs.costs import x"),
        ("data/tasks.py", "from market_metarl import live"),
        ("envs/market.py", "from ..meta import adapt"),
        ("meta/adapt.py", "def f():\n    from market_metarl.backtest import bridge\n"),
        ("types.py", "from market_metarl.data.bars import validate_bars"),
        ("config.py", "from .envs import spec"),
        ("meta/adapt.py", "import backtrader as bt"),
        ("data/plotting.py", "def f():\n    from backtrader import plot\n"),
        ("data/bars.py", "from market_metarl.cli import main"),
        ("data/__init__.py", "from ..envs import spec"),
    ],
)
def test_checker_flags_backward_imports(file: str, code: str) -> None:
    assert violations(PACKAGE / file, source=code)


@pytest.mark.parametrize(
    ("file", "code"),
    [
        ("envs/market.py", "from market_metarl.data.bars import validate_bars"),
        ("live/loop.py", "from ..backtest import metrics\nfrom ..meta import adapt"),
        ("backtest/bridge.py", "import backtrader as bt"),
        ("cli.py", "from market_metarl.live import loop"),
        ("data/tasks.py", "from market_metarl.types import TaskSpec\nfrom . import bars"),
        ("config.py", "from market_metarl.types import ConfigError"),
        ("envs/__init__.py", "from .costs import CostModel\nfrom ..data import bars"),
    ],
)
def test_checker_allows_forward_imports(file: str, code: str) -> None:
    assert violations(PACKAGE / file, source=code) == []


# ------------------------------------------------------------------------------------- cycles


def import_graph() -> dict[str, set[str]]:
    """``{module: package modules it imports}``.

    Every import counts, module level or in a function, under ``TYPE_CHECKING`` or not;
    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``.
    """
    modules = {module_name(p): p for p in package_files()}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for _, target in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> str:
    """A shortest closed import path through ``component``'s first module, ``a -> b -> a``."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return " -> ".join([*reversed(path), start])
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{component} is not a cycle")


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(cycle_path(graph, c) for c in cycles)


def test_cycle_finder_on_a_hand_made_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert cycle_path(graph, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_cycle_walk_sees_type_checking_and_function_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from market_metarl.envs.market import TaskMarket\n"
        "def f():\n    from ..types import TaskSpec\n"
    )
    targets = {t for _, t in imported_modules(source, "market_metarl.data.tasks", False)}
    assert {"market_metarl.envs.market", "market_metarl.types"} <= targets
