"""The core's import graph has no cycle, counting imports inside functions (type-only imports aside)."""

from __future__ import annotations

import ast
from pathlib import Path

import clgym_core

CORE = Path(clgym_core.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, modules: set[str]) -> set[str]:
    """clgym_core modules that ``path`` imports anywhere in its body except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in CORE.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        # A package's own __init__ importing its submodules (and a submodule its package) is not a cycle of jobs.
        graph[name] = {m for m in _imports(path, modules) if m != name and not name.startswith(f"{m}.")
                       and not m.startswith(f"{name}.")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_core_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_engine_does_not_reach_up_into_spec_code() -> None:
    graph = import_graph()
    for engine in ("clgym_core.trainer", "clgym_core.loggers", "clgym_core.callback", "clgym_core.collector"):
        assert "clgym_core.spec" not in graph[engine], f"{engine} imports clgym_core.spec"
        assert "clgym_core.build" not in graph[engine] and "clgym_core.runner" not in graph[engine]
    assert "clgym_core.algorithm" not in graph["clgym_core.spec"], "spec parsing imports the algorithm module"
