"""No import cycle in ``src/whathappens``: a module never imports the module that calls it.

The graph is read from the source (the AST), not from ``sys.modules``, so it sees every import
whether or not it runs: module-level ones, those inside functions (our lazy imports, made to
keep the cold start short) and those under ``if TYPE_CHECKING:``. A type-only import is a
dependency too: the module cannot be understood, or type-checked, without the other one, and
the cycle trace.py ↔ net/tls_compare.py was one. A lazy import hides a cycle from Python at
start-up, not from the design.

How an import becomes an edge:

- ``import a.b.c`` and ``from a.b.c import x`` are an edge to ``a.b.c`` (the deepest module of
  ours the name reaches), or to ``a.b.c.x`` when ``x`` is itself a module of ours;
- relative imports are resolved against the importing module's package;
- importing ``a.b.c`` also runs the packages ``a`` and ``a.b``, but those are not edges here:
  our package ``__init__`` files import nothing of their submodules, and counting them would
  make every ``__init__`` that re-exports a submodule look like a cycle with it;
- anything outside ``whathappens`` is ignored.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "whathappens"

# Cycles that exist on purpose for now, each as the set of its modules, with who removes it.
# Empty: there is none. An entry must name its owner, and fails the test once the cycle is gone
# (delete the entry then), so the list only shrinks.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package), for every ``.py`` under ``root``."""
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, package)
    return out


def _imported_names(node: ast.AST, name: str, package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = name.split(".") if package else name.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            yield f"{module}.{alias.name}"  # a submodule, or a name inside ``module``


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Module → {module of ours it imports: line of the first such import}."""
    mods = modules(root)
    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for name, (path, package) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported_names(node, name, package):
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in mods and target != name:
                    graph[name][target] = min(graph[name].get(target, node.lineno), node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def one_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A path round the component, each step "module:line → module" (breadth-first, so the
    shortest cycle through the component's first module)."""
    start, inside = component[0], set(component)
    paths: dict[str, list[str]] = {start: []}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w, line in sorted(graph[v].items()):
            step = f"{v}:{line} → {w}"
            if w == start:
                return [*paths[v], step]
            if w in inside and w not in paths:
                paths[w] = [*paths[v], step]
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    edges = [f"    {v}:{line} → {w}" for v in component
             for w, line in sorted(graph[v].items()) if w in component]
    return ("  cycle: " + "\n         ".join(one_cycle(graph, component))
            + "\n  every import inside it:\n" + "\n".join(edges))


def test_no_import_cycle_in_src() -> None:
    graph = import_graph(SRC)
    assert "whathappens.cli" in graph
    assert "whathappens.trace" in graph
    found = [c for c in cycles(graph) if frozenset(c) not in ALLOWED_CYCLES]
    assert not found, "import cycles (a module imports its caller; move the shared part " \
        "down):\n" + "\n".join(describe(graph, c) for c in found)


def test_every_allowed_cycle_still_exists_and_has_an_owner() -> None:
    present = {frozenset(c) for c in cycles(import_graph(SRC))}
    for cycle, owner in ALLOWED_CYCLES.items():
        assert owner.strip(), f"{sorted(cycle)}: say who removes it"
        assert cycle in present, f"{sorted(cycle)} is gone: delete it from ALLOWED_CYCLES"


def test_the_cycle_finder_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle through a function-level import, one through a
    TYPE_CHECKING import, relative imports, and a chain without a cycle."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg.b import g\n",
        "b.py": "import os\nfrom pkg import a\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import d\n",
        "sub/__init__.py": "",
        "sub/d.py": "from .. import c\nfrom ..sub import e\n",
        "sub/e.py": "import pkg.b\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    graph = import_graph(pkg)
    assert graph["pkg.sub.d"] == {"pkg.c": 1, "pkg.sub.e": 2}
    assert graph["pkg.sub.e"] == {"pkg.b": 1}
    assert sorted(cycles(graph)) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.d"]]
    text = describe(graph, ["pkg.c", "pkg.sub.d"])
    assert "pkg.c:3 → pkg.sub.d" in text
    assert "pkg.sub.d:1 → pkg.c" in text


def test_no_lower_layer_imports_the_commands() -> None:
    """cli.py dispatches to commands/, commands/ to the demo, the page and the drivers: the
    arguments and output writing are imported from commands/, never back up into it."""
    graph = import_graph(SRC)
    commands = {"whathappens.cli"} | {m for m in graph if m.startswith("whathappens.commands")}
    assert "whathappens.commands.arguments" in commands
    upward = sorted(f"{m} → {t}" for m in graph if m not in commands
                    for t in graph[m] if t in commands and m != "whathappens.__main__")
    assert not upward, upward
