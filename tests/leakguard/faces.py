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


def people_photos() -> list[np.ndarray]:
    """Eight different people, one photo each: the astronaut, the six of t1.jpg cut out with a margin
    around dlib's box, and Tom Hanks."""
    import dlib
    photo = t1()
    out = [astronaut()]
    for r in sorted(dlib.get_frontal_face_detector()(photo, 1), key=lambda r: r.left()):
        m = r.width() // 2
        out.append(photo[max(0, r.top() - m):r.bottom() + m, max(0, r.left() - m):r.right() + m])
    assert len(out) == 7, "t1.jpg: expected dlib to find six faces"
    return out + [tom_hanks()]


def face_crops(size: int = 144) -> list[np.ndarray]:
    """people_photos(), each cut out around the largest face dlib finds (half a box of margin; the
    whole photo where it finds none) and resized to size x size: [size, size, 3] uint8."""
    import dlib
    from PIL import Image
    detector, out = dlib.get_frontal_face_detector(), []
    for photo in people_photos():
        found = sorted(detector(photo, 1), key=lambda r: -r.area())
        if found:
            r, h, w = found[0], photo.shape[0], photo.shape[1]
            m = r.width() // 2
            photo = photo[max(0, r.top() - m):min(h, r.bottom() + m), max(0, r.left() - m):min(w, r.right() + m)]
        out.append(np.asarray(Image.fromarray(np.ascontiguousarray(photo)).resize((size, size), Image.LANCZOS)))
    return out
