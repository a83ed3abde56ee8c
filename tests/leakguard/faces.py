"""Real face photos that installed packages ship, for the dlib, landmark and ArcFace tests:
scikit-image's astronaut (Eileen Collins), and InsightFace's t1.jpg (six people) and Tom_Hanks_54745.png."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch


def _insightface_image(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("insightface")   # located, not imported: importing it loads opencv and onnx
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("insightface is not installed (pip install -e '.[test]')")
    from PIL import Image
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / name
    return np.asarray(Image.open(path).convert("RGB"))


def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()                   # [512, 512, 3] uint8, one face


def t1() -> np.ndarray:
    return _insightface_image("t1.jpg")               # [886, 1280, 3] uint8, six faces in a row of people


def tom_hanks() -> np.ndarray:
    return _insightface_image("Tom_Hanks_54745.png")  # [112, 112, 3] uint8, an ArcFace-aligned crop


def as_batch(*images: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 arrays of one size -> [N, 3, H, W] uint8."""
    return torch.from_numpy(np.stack([np.ascontiguousarray(i) for i in images])).permute(0, 3, 1, 2).contiguous()
