"""Five facial landmarks for TorchMatcher's alignment='detect' (and ArcFaceOnnx's), from dlib.

    detector = DlibLandmarks()
    m = ArcFaceOnnx("w600k_r50.onnx", alignment="detect", detector=detector)   # or any TorchMatcher
    points = detector(images)      # [N, 3, H, W] uint8 or float in [-1, 1] -> [N, 5, 2] float64 pixels

The points come in the order of align.ARCFACE_112 (image-left eye, image-right eye, nose tip,
image-left mouth corner, image-right mouth corner) with pixel centres at i + 0.5, as align.py uses.
"""
import numpy as np
import torch

from leakguard.matchers import align
from leakguard.matchers.dlib_matcher import (NoFaceFound, check_on_missing, import_dlib, largest_face,
                                             packaged_model, to_rgb_uint8)

# The 68-point iBUG 300-W markup: eye contours 36-41 (image left) and 42-47 (image right), the nose
# tip 30, mouth corners 48 (image left) and 54 (image right).
EYE_LEFT, EYE_RIGHT = slice(36, 42), slice(42, 48)
NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = 30, 48, 54


def five_from_68(points: np.ndarray) -> np.ndarray:
    """[68, 2] iBUG points -> [5, 2] in ARCFACE_112's order (eye centres are contour means)."""
    return np.stack([points[EYE_LEFT].mean(0), points[EYE_RIGHT].mean(0), points[NOSE_TIP],
                     points[MOUTH_LEFT], points[MOUTH_RIGHT]])


class DlibLandmarks:
    """dlib's HOG frontal face detector (Dalal & Triggs 2005) on the largest face, then the 68-point
    shape predictor (Kazemi & Sullivan 2014) from face_recognition_models, reduced to five points.
    Images without a face raise NoFaceFound (on_missing='error') or get NaN points (on_missing='nan')."""

    def __init__(self, upsample: int = 1, on_missing: str = "error"):
        if upsample < 0:
            raise ValueError(f"DlibLandmarks: upsample={upsample} must be >= 0")
        check_on_missing("DlibLandmarks", on_missing)
        dlib = import_dlib()
        self.upsample = upsample
        self.on_missing = on_missing
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(packaged_model("shape_predictor_68_face_landmarks.dat")))

    def points68(self, rgb: np.ndarray) -> np.ndarray | None:
        """One [H, W, 3] uint8 RGB image -> the largest face's [68, 2] points in dlib's convention
        (pixel centres at integers), or None."""
        rect = largest_face(self.detector, rgb, self.upsample)
        if rect is None:
            return None
        shape = self.predictor(rgb, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        rgb = to_rgb_uint8(images)                                  # [N, H, W, 3]
        out = np.full([len(rgb), 5, 2], np.nan)
        missing = []
        for i, image in enumerate(rgb):
            points = self.points68(image)
            if points is None:
                missing.append(i)
            else:
                out[i] = align.centred(five_from_68(points))
        if missing and self.on_missing == "error":
            raise NoFaceFound(f"DlibLandmarks: dlib's HOG detector found no face in {len(missing)} of {len(rgb)} "
                              f"images ({rgb.shape[1]} x {rgb.shape[2]}), at positions {missing[:20]} of this batch; pass "
                              "on_missing='nan' for NaN points")
        return out
