"""No import cycles in p2psync (issue 19.1): between its top-level modules and packages
(``app``, ``services``, ``net``, ``discovery``, ``api``, ``web``, ...) and between the
modules inside a package.

The import graph is read from the source with ``ast`` (every ``import`` counts, those
under ``if TYPE_CHECKING:`` and inside functions too: a cycle there is still two parts
that each need the other). A package's ``__init__`` re-exporting its own modules is not
a cycle of parts, so ``from . import module`` counts as importing the module only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import p2psync

ROOT = Path(p2psync.__file__).parent

# Cycles allowed for now: none. A change that needs one names it here, with why.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["p2psync", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The p2psync modules that module ``name`` imports."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{a.name}" for a in node.names]
            submodules = [m for m in submodules if m in modules]
            if len(submodules) < len(node.names):
                out.add(target)
            out.update(submodules)
    return {m for m in out if m in modules and m != name}


def _graph(depth: int | None) -> dict[str, set[str]]:
    """Who imports whom, with names cut to ``depth`` parts (None: whole module names)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        unit = ".".join(name.split(".")[:depth])
        for target in _imports(name, path, modules):
            other = ".".join(target.split(".")[:depth])
            if other != unit:
                graph.setdefault(unit, set()).add(other)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _shown(cycles: Iterable[frozenset[str]]) -> list[list[str]]:
    return sorted(sorted(c) for c in cycles)


def test_no_cycle_between_top_level_modules_and_packages() -> None:
    assert _shown(_cycles(_graph(depth=2))) == []


def test_no_cycle_between_modules_but_the_known_ones() -> None:
    cycles = set(_cycles(_graph(depth=None)))
    assert _shown(cycles - KNOWN_CYCLES) == []


def test_the_known_cycles_are_still_there() -> None:
    """A known cycle that is gone must leave KNOWN_CYCLES, so that it cannot come back."""
    assert _shown(KNOWN_CYCLES - set(_cycles(_graph(depth=None)))) == []


def test_a_cycle_is_found() -> None:
    """The finder itself: a cycle through three modules and one of two."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}}
    assert _shown(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]
