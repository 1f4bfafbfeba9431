"""The import graph of ``opsctl/`` and ``daemon/`` (installed as ``opsctld``), read from the source.

Every ``import`` counts: at module level, inside functions and under ``if TYPE_CHECKING:`` (a lazy
import is still a dependency; it only moves the failure to run time). Three rules:

- no import cycle;
- no module imports another module's ``_private`` name (``from x import _y``, or ``x._y`` on a
  module bound by an import);
- layers point down: ``opsctl/core`` imports nothing from adapters, services or shells; adapters
  nothing from services or shells; services nothing from shells (see docs/CONVENTIONS.md).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the top-level import name it installs as (pyproject's package-dir).
PACKAGES = {"opsctl": "opsctl", "daemon": "opsctld"}


@dataclass(frozen=True)
class Import:
    """One import statement's effect: ``source`` imports module ``target`` (line ``line``)."""

    source: str
    target: str
    line: int


@dataclass(frozen=True)
class PrivateUse:
    source: str
    line: int
    what: str


def module_files() -> dict[str, Path]:
    """Every module of the two packages, by its import name."""
    modules: dict[str, Path] = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([name, *parts])] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve_relative(module: str, path: Path, level: int, name: str | None) -> str:
    package = module if _is_package(path) else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def _internal(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (None for third-party names)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _ancestors(module: str) -> Iterator[str]:
    parts = module.split(".")
    for i in range(1, len(parts)):
        yield ".".join(parts[:i])


class _Reader(ast.NodeVisitor):
    """Collects the imports and the private-name uses of one module."""

    def __init__(self, module: str, path: Path, modules: dict[str, Path]) -> None:
        self.module, self.path, self.modules = module, path, modules
        self.imports: list[Import] = []
        self.private: list[PrivateUse] = []
        self.bound: dict[str, str] = {}  # local name -> the module (or package) it is bound to

    def _edge(self, target: str, line: int) -> None:
        if target == self.module:
            return
        self.imports.append(Import(self.module, target, line))
        # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless we are inside them already.
        for package in _ancestors(target):
            if package in self.modules and not (self.module == package or self.module.startswith(package + ".")):
                self.imports.append(Import(self.module, package, line))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            target = _internal(alias.name, self.modules)
            if target is None:
                continue
            self._edge(target, node.lineno)
            if alias.asname:
                self.bound[alias.asname] = target
            else:
                top = alias.name.split(".")[0]
                self.bound.setdefault(top, top)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve_relative(self.module, self.path, node.level, node.module) if node.level else node.module
        if base is None or _internal(base, self.modules) is None:
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in self.modules:  # `from pkg import module`
                self._edge(submodule, node.lineno)
                self.bound[alias.asname or alias.name] = submodule
                if _private(alias.name):
                    self.private.append(PrivateUse(self.module, node.lineno, f"from {base} import {alias.name}"))
                continue
            owner = _internal(base, self.modules)
            assert owner is not None
            self._edge(owner, node.lineno)
            if _private(alias.name):
                self.private.append(PrivateUse(self.module, node.lineno, f"from {base} import {alias.name}"))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = []
        value: ast.expr = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.bound:
            chain.reverse()
            module = self.bound[value.id]
            for attr in chain:
                if f"{module}.{attr}" in self.modules and not _private(attr):
                    module = f"{module}.{attr}"
                    continue
                if _private(attr) and module != self.module:
                    self.private.append(PrivateUse(self.module, node.lineno, f"{value.id}.{'.'.join(chain)}"))
                break
            return  # the whole chain is read; do not visit its inner Attribute nodes again
        self.generic_visit(node)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def read_graph() -> tuple[dict[str, list[Import]], list[PrivateUse]]:
    modules = module_files()
    graph: dict[str, list[Import]] = {}
    private: list[PrivateUse] = []
    for module, path in modules.items():
        reader = _Reader(module, path, modules)
        reader.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[module] = reader.imports
        private += reader.private
    return graph, private


def find_cycles(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """One concrete cycle per strongly connected component (Tarjan), each as its chain of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(node: str) -> None:
        # Iterative Tarjan: the graph is deep enough to matter for recursion on small stacks.
        work = [(node, iter(graph.get(node, ())))]
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        while work:
            current, edges = work[-1]
            advanced = False
            for edge in edges:
                nxt = edge.target
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[current] = min(low[current], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[current])
            if low[current] == index[current]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == current:
                        break
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    cycles = []
    for component in components:
        if len(component) > 1:
            cycles.append(_cycle_in(graph, component))
    return cycles


def _cycle_in(graph: dict[str, list[Import]], component: set[str]) -> list[Import]:
    """A shortest cycle through the component's smallest module (breadth-first)."""
    start = min(component)
    parents: dict[str, Import] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in graph[node]:
            if edge.target not in component:
                continue
            if edge.target == start:
                chain = [edge]
                while chain[0].source != start:
                    chain.insert(0, parents[chain[0].source])
                return chain
            if edge.target not in parents:
                parents[edge.target] = edge
                queue.append(edge.target)
    raise AssertionError(f"no cycle through {start}")


def _show(chain: list[Import], files: dict[str, Path], graph: dict[str, list[Import]]) -> str:
    steps = [f"{e.source} ({files[e.source].relative_to(ROOT)}:{e.line})" for e in chain]
    text = " -> ".join([*steps, chain[0].source])
    tangled = _component_of(graph, chain[0].source) - {e.source for e in chain}
    return text + (f"\n  (tangled with it too: {', '.join(sorted(tangled))})" if tangled else "")


def _component_of(graph: dict[str, list[Import]], start: str) -> set[str]:
    """The modules reachable from ``start`` that reach it back."""
    def reach(froms: dict[str, list[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in froms.get(todo.pop(), []):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    forward = {m: [e.target for e in edges] for m, edges in graph.items()}
    backward: dict[str, list[str]] = {}
    for m, edges in graph.items():
        for e in edges:
            backward.setdefault(e.target, []).append(m)
    return reach(forward) & reach(backward)


# Layers, lowest first. A module is in the first layer whose prefix it matches; names not listed
# (errors, clock, domain, jsonlog, settings_loader, config) are the shared foundation below the shells.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("opsctl.core",),
    "adapters": ("opsctl.adapters",),
    "services": ("opsctl.services",),
    "shells": ("opsctl.cli", "opsctl.tui", "opsctl.sdk", "opsctl.demo", "opsctl.client", "opsctl.backends",
               "opsctld"),
}
FORBIDDEN = {
    "core": ("adapters", "services", "shells"),
    "adapters": ("services", "shells"),
    "services": ("shells",),
}


def layer_of(module: str) -> str | None:
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    return None


def test_the_graph_reader_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    """The reader itself: imports in functions and under TYPE_CHECKING are edges; private uses are found."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import opsctl.errors as errors\n"
        "if TYPE_CHECKING:\n"
        "    from opsctl.domain import Actor\n"
        "def f():\n"
        "    from opsctl.clock import _private_helper\n"
        "    return errors._hidden\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source)
    modules = {**module_files(), "opsctl.probe": path}
    reader = _Reader("opsctl.probe", path, modules)
    reader.visit(ast.parse(source))
    assert {e.target for e in reader.imports} == {"opsctl.errors", "opsctl.domain", "opsctl.clock"}
    assert sorted(p.what for p in reader.private) == ["errors._hidden", "from opsctl.clock import _private_helper"]
    looped = {"a": [Import("a", "b", 1)], "b": [Import("b", "c", 2)], "c": [Import("c", "a", 3)], "d": []}
    assert [[e.source for e in chain] for chain in find_cycles(looped)] == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    graph, _ = read_graph()
    assert len(graph) > 50, "the reader found too few modules to be looking at the source"
    files = module_files()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_show(c, files, graph) for c in cycles)


def test_no_module_imports_another_modules_private_names() -> None:
    _, private = read_graph()
    files = module_files()
    lines = [f"{files[p.source].relative_to(ROOT)}:{p.line}: {p.what}" for p in private]
    assert not lines, "private names used across modules:\n" + "\n".join(lines)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_point_down(layer: str) -> None:
    graph, _ = read_graph()
    files = module_files()
    wrong = sorted(
        f"{files[e.source].relative_to(ROOT)}:{e.line}: {e.source} ({layer}) imports {e.target} ({layer_of(e.target)})"
        for edges in graph.values()
        for e in edges
        if layer_of(e.source) == layer and layer_of(e.target) in FORBIDDEN[layer]
    )
    assert not wrong, f"{layer} must not import {', '.join(FORBIDDEN[layer])}:\n" + "\n".join(wrong)
