"""The layout's rules, read from the source: imports flow cuda_ops <- training -> leakguard (the
privacy suite and the kernels never import the StyleGAN2 trunk, the kernels nothing above them),
and no module imports itself back through another, directly or through a package __init__.

Every import statement counts, also those inside functions: a lazy import that closes a cycle is
still a cycle. `from P import x` is an import of the module P.x when x is a submodule, else of P.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cuda_ops", "training", "leakguard")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_the_graph_sees_the_known_edges(graph):
    # A reader that missed edges would pass every rule below; these edges are in the code on purpose.
    assert "training.networks.layers" in graph["training.networks.generator"]
    assert "cuda_ops.upfirdn2d" in graph["training.networks.layers"]
    assert "leakguard.atomic" in graph["training.checkpoint"]
    assert "training.cli.audit" in graph["training.cli"]


@pytest.mark.parametrize("package,forbidden", [("leakguard", "training"), ("cuda_ops", "training"),
                                               ("cuda_ops", "leakguard")])
def test_imports_flow_one_way(graph, package, forbidden):
    offenders = sorted(f"{a} -> {b}" for a, targets in graph.items() if a.split(".")[0] == package
                       for b in targets if b.split(".")[0] == forbidden)
    assert not offenders, f"{package}/ must not import {forbidden}/: {offenders}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle_through_a_package_init():
    toy = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": set()}
    assert cycles(toy) == [["p", "p.a", "p.b"]]


def test_no_import_cycles(graph):
    assert cycles(graph) == []
