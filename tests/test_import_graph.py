"""The layout's rules, read from the source: imports flow cuda_ops <- training -> leakguard (the
privacy suite and the kernels never import the StyleGAN2 trunk, the kernels nothing above them),
no module imports itself back through another, directly or through a package __init__, no library
module imports a command-line module, no module imports another module's underscore names, nothing
reads the environment at import, and opening a generator loads no training machinery.

Every import statement counts, also those inside functions: a lazy import that closes a cycle is
still a cycle. `from P import x` is an import of the module P.x when x is a submodule, else of P.
"""
import ast
import subprocess
import sys
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


def is_cli(module: str) -> bool:
    return ".cli." in f".{module}." and module.split(".")[0] in PACKAGES


def test_no_library_module_imports_a_cli_module(graph):
    # A command-line module parses arguments and prints; a library that needs its logic gets it from a library
    # module (leakguard.cli.options, the one shared parser helper, is still a cli module).
    offenders = sorted(f"{a} -> {b}" for a, targets in graph.items() if not is_cli(a) for b in targets if is_cli(b))
    assert not offenders, f"library modules import cli modules: {offenders}"


def private_imports(name: str, path: Path, known: set[str]) -> list[str]:
    """`from M import _x` where _x is a name inside module M (not a private submodule of M's own package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([node.module] if node.module else []))
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            submodule = f"{base}.{alias.name}" in known and base.split(".")[0] == name.split(".")[0]
            if private and not submodule:
                found.append(f"{name}: from {base} import {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names():
    mods = modules()
    offenders = [line for name, path in mods.items() for line in private_imports(name, path, set(mods))]
    assert not offenders, f"make a shared name public where it lives, or move it: {offenders}"


def test_the_private_name_rule_sees_a_private_import(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from pkg.report import CSS, _row\nfrom pkg import _kernels\n")
    found = private_imports("pkg.m", path, {"pkg", "pkg.report", "pkg._kernels", "pkg.m"})
    assert found == ["pkg.m: from pkg.report import _row"]


def environment_reads_at_import(path: Path) -> list[int]:
    """Lines that read os.environ / os.getenv outside any function: they run when the module is imported."""
    lines = []

    def visit(node, in_function: bool):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
        if not in_function and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "os" and node.attr in ("environ", "getenv", "environb"):
            lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return lines


def test_nothing_reads_the_environment_at_import():
    offenders = [f"{name}:{line}" for name, path in modules().items() for line in environment_reads_at_import(path)]
    assert not offenders, f"read the environment when a function runs, not at import: {offenders}"


def test_the_environment_rule_sees_a_module_level_read(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import os\nFLAG = os.environ.get('X')\ndef f():\n    return os.getenv('Y')\n")
    assert environment_reads_at_import(path) == [2]


def loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_opening_a_generator_loads_no_training_machinery():
    loaded = loaded_by("training.inference")
    heavy = sorted(m for m in loaded if m in ("training.state", "training.augment", "training.dp")
                   or m.startswith(("training.augment.", "training.dp.")))
    assert "training.checkpoint" in loaded and not heavy, heavy
