"""The layers hold: no import cycle among the project's runtime modules, and a lower layer never
imports a higher one (`ledger/` never imports `api/`). Read from the source (ast), so a new
package or module is guarded as soon as it exists."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every top-level package of the project except the tests themselves.
PACKAGES = sorted(
    p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"
)
# package -> packages it must never import (at any level, even inside a function)
FORBIDDEN = {"ledger": {"api", "keyservice"}, "api": {"keyservice"}}
# Cycles closed only by an import inside a function (deferred, so they do not fail at import
# time, but the modules still depend on each other). Known ones, to be removed by their owners;
# no new one may appear.
KNOWN_DEFERRED_CYCLES = [
    ["ledger.ingest.projection", "ledger.ingest.registry"],
]


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module `name` denotes (a module, or the package holding the name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """(imported at import time, imported anywhere) as project modules. Imports inside a
    function or under `if TYPE_CHECKING:` run later or never, so they do not make a cycle."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    eager: set[str] = set()
    anywhere: set[str] = set()

    def names(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parent = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{parent}.{base}" if base else parent
        return [f"{base}.{a.name}" for a in node.names] + [base]

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            now = at_import
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                now = False
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                now = False
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in names(child):
                    target = _resolve(name)
                    if target is not None and target != module:
                        anywhere.add(target)
                        if now:
                            eager.add(target)
            visit(child, now)

    visit(tree, True)
    return eager, anywhere


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_packages_are_found() -> None:
    assert {"ledger", "api"} <= set(PACKAGES)
    assert "api.app" in MODULES and "ledger.domain" in MODULES


def test_no_import_cycle_among_runtime_modules() -> None:
    eager = {m: e for m, (e, _a) in GRAPH.items()}
    assert _cycles(eager) == []


def test_no_new_cycle_through_deferred_imports() -> None:
    anywhere = {m: a for m, (_e, a) in GRAPH.items()}
    assert [c for c in _cycles(anywhere) if c not in KNOWN_DEFERRED_CYCLES] == []


def test_a_cycle_would_be_seen() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = [
        f"{m} imports {t}"
        for m, (_e, anywhere) in GRAPH.items()
        for t in anywhere
        if t.split(".")[0] in FORBIDDEN.get(m.split(".")[0], set())
    ]
    assert wrong == []
