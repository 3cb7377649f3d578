"""The package's import graph: no cycles, and no layer reaches up.

Data flows one way (service -> processor -> OTLP -> collector -> store ->
reports -> the command line), and so must imports: a report builder that
imports the CLI, or a store module that imports the collector, ties a lower
layer to everything above it and ends in import cycles that break at start-up
in whichever order modules happen to load. Every module under
``processor/spanledger`` is parsed with :mod:`ast` (imports at any depth,
inside functions and ``if TYPE_CHECKING:`` blocks too, since a function-level
import is still a dependency), and the graph is checked against
:data:`ALLOWED`, the layering ARCHITECTURE.md describes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "processor"
PACKAGE = "spanledger"

#: single modules at the package top that every layer may use (no spanledger imports
#: of their own beyond each other)
BASE_MODULES = ("semconv", "yamlconf", "resources", "errors")

#: layer -> the layers it may import (its own layer is always allowed). Bottom to top:
#: base < pricing < processor < api (the package root's public names);
#: base < store < collector; reports over store and pricing; reconcile over the
#: reports (bills against the metered calls); budgets (evaluation, alerts) over the
#: reports, run by the collector's schedule; demo drives the collector, the public
#: API, the reports, budgets and reconcile; cli sits on top of everything.
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "pricing": frozenset({"base"}),
    "processor": frozenset({"base", "pricing"}),
    "api": frozenset({"processor"}),
    "store": frozenset({"base"}),
    "collector": frozenset({"base", "pricing", "store", "budgets"}),
    "reports": frozenset({"base", "pricing", "store"}),
    "reconcile": frozenset({"base", "pricing", "store", "reports"}),
    "budgets": frozenset({"base", "pricing", "store", "reports"}),
    "demo": frozenset({"base", "api", "store", "collector", "reports", "budgets",
                       "reconcile"}),
    "cli": frozenset({"base", "pricing", "store", "collector", "reports", "budgets",
                      "reconcile", "demo"}),
}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (None: a module no layer claims yet)."""
    parts = module.split(".")
    if parts == [PACKAGE]:
        return "api"
    top = parts[1]
    if top in BASE_MODULES:
        return "base"
    if top == "__main__":
        return "cli"
    return top if top in ALLOWED else None


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    #: the importing file, relative to the repository (``processor/spanledger/...``)
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source} imports {self.target}"


def discover(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = (path, is_package)
    return modules


def _resolve(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The most specific known module a dotted import name lands in."""
    while name and name not in modules:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name or None


def imports_of(module: str, path: Path, is_package: bool,
               modules: dict[str, tuple[Path, bool]], root: Path = ROOT) -> Iterator[Edge]:
    """Every spanledger module ``module`` imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    file = path.relative_to(root.parent).as_posix()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            # `from pkg import sub` imports the submodule when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        for name in names:
            target = _resolve(name, modules) if name.split(".")[0] == PACKAGE else None
            if target is not None and target != module:
                yield Edge(module, target, file, node.lineno)


def import_graph(root: Path = ROOT) -> dict[str, list[Edge]]:
    modules = discover(root)
    return {m: list(imports_of(m, p, pkg, modules, root)) for m, (p, pkg) in modules.items()}


def upward_imports(graph: dict[str, list[Edge]]) -> list[str]:
    problems = []
    for module, edges in graph.items():
        source = layer_of(module)
        if source is None:
            problems.append(f"{module}: in no layer; add it to ALLOWED in tests/test_layering.py")
            continue
        for e in edges:
            target = layer_of(e.target)
            if target is None or target == source or target in ALLOWED[source]:
                continue
            allowed = ", ".join(sorted(ALLOWED[source])) or "nothing"
            problems.append(f"{e}: layer {source} may not import layer {target} "
                            f"({source} may import: {allowed})")
    return problems


def cycles(graph: dict[str, list[Edge]]) -> list[list[Edge]]:
    """One import cycle per strongly connected component (Tarjan), as its edges."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for e in graph.get(v, ()):
            if e.target not in index:
                visit(e.target)
                low[v] = min(low[v], low[e.target])
            elif e.target in on_stack:
                low[v] = min(low[v], index[e.target])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(sorted(c)[0], c, graph) for c in components]


def _cycle_through(start: str, component: set[str],
                   graph: dict[str, list[Edge]]) -> list[Edge]:
    """A shortest path start -> ... -> start inside one component (breadth first)."""
    came: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for e in graph[v]:
                if e.target not in component:
                    continue
                if e.target == start:
                    path = [e]
                    while path[0].source != start:
                        path.insert(0, came[path[0].source])
                    return path
                if e.target not in came:
                    came[e.target] = e
                    nxt.append(e.target)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component always has one


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Edge]]:
    return import_graph()


def test_the_graph_sees_the_package(graph: dict[str, list[Edge]]) -> None:
    # a walker that found nothing would pass every check below
    assert len(graph) > 50
    assert any(e.target == "spanledger.errors" for e in graph["spanledger.reports.period"])
    # imports inside functions count: report.run_spend imports the spend builder there
    assert any(e.target == "spanledger.reports.html" for e in graph["spanledger.cli.report"])


def test_allowed_layers_form_an_order() -> None:
    """ALLOWED itself must be a DAG, or 'upward' would mean nothing."""
    fake = {layer: [Edge(layer, t, "ALLOWED", 0) for t in targets] for layer, targets in
            ALLOWED.items()}
    assert cycles(fake) == []


def test_no_layer_imports_a_layer_above_it(graph: dict[str, list[Edge]]) -> None:
    problems = upward_imports(graph)
    assert not problems, "imports that reach up a layer:\n" + "\n".join(problems)


def test_no_import_cycles(graph: dict[str, list[Edge]]) -> None:
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(
        "\n".join(f"  {e}" for e in cycle) for cycle in found)


def test_checks_catch_a_cli_import_in_reports(tmp_path: Path) -> None:
    """The checks fail, naming file and line, on the import this layering forbids."""
    root = tmp_path / "processor"
    pkg = root / PACKAGE
    for sub in ("cli", "reports"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "main.py").write_text("from spanledger.reports import spend\n")
    (pkg / "reports" / "spend.py").write_text(
        '"""doc"""\n\ndef f():\n    from spanledger.cli.main import main\n')
    g = import_graph(root)
    (problem,) = upward_imports(g)
    assert problem.startswith("processor/spanledger/reports/spend.py:4: spanledger.reports.spend "
                              "imports spanledger.cli.main: layer reports may not import "
                              "layer cli")
    (cycle,) = cycles(g)
    assert [(e.source, e.target) for e in cycle] == [
        ("spanledger.cli.main", "spanledger.reports.spend"),
        ("spanledger.reports.spend", "spanledger.cli.main")]


# -- ARCHITECTURE.md states the same rules ---------------------------------------------------

REPO = ROOT.parent
#: paths starting with these are relative to the repository, others to processor/spanledger
TOP_FOLDERS = ("clickhouse", "collector-config", "deploy", "bench", "tests")


def architecture() -> str:
    return (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")


def test_architecture_layer_table_is_the_allowed_table() -> None:
    rows = re.findall(r"^\| (\w+) \| [^|]+ \| ([^|]+) \|$", architecture(), re.MULTILINE)
    documented = {layer: frozenset() if may.strip().startswith("nothing")
                  else frozenset(x.strip() for x in may.split(","))
                  for layer, may in rows if layer in ALLOWED}
    assert documented == ALLOWED, "ARCHITECTURE.md's layer table and ALLOWED disagree"


def test_architecture_names_files_that_exist() -> None:
    """A renamed module must be renamed in the map too (paths in backticks)."""
    missing = []
    for name in re.findall(r"`([\w./-]+)`", architecture()):
        if "/" not in name and not name.endswith(".py"):
            continue  # a name, not a path
        top = name.split("/")[0]
        if name.startswith(f"processor/{PACKAGE}/") or top in TOP_FOLDERS:
            base = REPO
        else:
            base = ROOT if top == PACKAGE else ROOT / PACKAGE
        if not (base / name).exists():
            missing.append(name)
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"
