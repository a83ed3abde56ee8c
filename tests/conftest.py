"""Shared test setup: fixed seeds, and the path of the official StyleGAN2 fixtures beside the repo."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# LEAKGUARD_FIXTURES points elsewhere, e.g. on a GPU machine that gets the repo without ../shared.
FIXTURES = Path(os.environ.get("LEAKGUARD_FIXTURES", REPO.parent / "shared" / "fixtures")) / "stylegan2"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def load_fixture(name: str):
    """(meta from NAME.json, arrays from NAME.npz); skips when ../shared/fixtures is not there."""
    if not (FIXTURES / f"{name}.npz").exists():
        pytest.skip(f"official fixtures not found at {FIXTURES} (expected ../shared beside the repo)")
    meta = json.loads((FIXTURES / f"{name}.json").read_text()) if (FIXTURES / f"{name}.json").exists() else None
    return meta, np.load(FIXTURES / f"{name}.npz")


def rel_err(a: torch.Tensor, b) -> float:
    """max |a - b| / max |b|: the relative error the parity acceptance is stated in."""
    b = torch.as_tensor(np.asarray(b), dtype=a.dtype)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
