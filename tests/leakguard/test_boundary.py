"""The privacy suite must stay usable without the StyleGAN2 trunk: leakguard/ never imports training/."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package,forbidden", [("leakguard", "training"), ("cuda_ops", "training"),
                                               ("cuda_ops", "leakguard")])
def test_imports_flow_one_way(package, forbidden):
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == forbidden]
    assert not offenders, f"{package}/ must not import {forbidden}/: {offenders}"
