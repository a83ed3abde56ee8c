"""A face model given as a file (.onnx, TorchScript .pt, .tflite) and its sidecar spec, behind the matcher
interface: the spec says how faces are cropped and scaled for it (file_spec.py), the runtime runs it.

    m = FileMatcher("fr_feature.onnx", name="faceplugin")    # reads fr_feature.onnx.matcher.yaml
    e = m.embed(photos)                                       # [N, D] unit rows
    m.version                                                 # file:weights-<sha256>:spec-<sha256>:detect

Everything is checked when the matcher is built, before any face is embedded: the spec's keys and values,
that the spec fits the model (layout, input size, batch, output) and that its landmark source is installed.
"""
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from leakguard.matchers import align
from leakguard.matchers.base import Matcher
from leakguard.matchers.file_spec import FileSpec, SpecError, check_landmarks_installed, read_spec, spec_path
from leakguard.matchers.runtimes import check_fit, open_runtime
from leakguard.matchers.weights import require_file
from leakguard.torch_files import file_sha256

ALIGNMENTS = ("ffhq", "none", "detect")
# The alignment a spec's preparation means when the caller names none.
DEFAULT_ALIGNMENT = {"arcface5": "detect", "box": "detect", "ffhq": "ffhq", "none": "none"}


def template_for(size: tuple[int, int]) -> np.ndarray:
    """InsightFace's 112 px ArcFace template stretched to an (H, W) input, pixel centres at i + 0.5."""
    h, w = size
    return align.centred(align.ARCFACE_112 * np.array([w / 112, h / 112]))


def box_transform(box, margin: float) -> tuple[float, float, float, float]:
    """A face box (left, top, right, bottom), right and bottom inclusive pixel indices as dlib gives them,
    widened by `margin` of its side on every side -> (x0, y0, x1, y1) edges in pixel units."""
    left, top, right, bottom = (float(v) for v in box)
    x0, y0, x1, y1 = left, top, right + 1, bottom + 1
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return x0 - mx, y0 - my, x1 + mx, y1 + my


def box_to_crop(edges, size: tuple[int, int]) -> np.ndarray:
    """The 2 x 3 map taking the box with edges (x0, y0, x1, y1) onto an (H, W) crop."""
    x0, y0, x1, y1 = edges
    h, w = size
    sx, sy = w / (x1 - x0), h / (y1 - y0)
    return np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy]])


class FileMatcher(Matcher):
    """Any face-embedding network in a file, fed as its spec says. `alignment` says what the images are:
    detect  photos: the spec's landmark source finds each face (arcface5: five landmarks, box: a box)
    ffhq    FFHQ-aligned faces: the landmarks (or dlib's box) FFHQ's alignment puts in every image
    none    already the model's crop: only resized
    None means the spec's own: detect for arcface5 and box, ffhq for ffhq, none for none."""

    def __init__(self, weights: str | Path, name: str = "file", device="cpu", batch_size: int = 64,
                 alignment: Optional[str] = None):
        self.name = name
        super().__init__(device=device, batch_size=batch_size)
        self.path = require_file(name, weights, "a model file (.onnx, .pt, .tflite) with a MODEL.matcher.yaml spec",
                                 "docs/matchers.md, 'Your own model'")
        where = str(spec_path(self.path))
        self.spec: FileSpec = read_spec(where, self.path.suffix)
        alignment = DEFAULT_ALIGNMENT[self.spec.preparation] if alignment is None else alignment
        if alignment not in ALIGNMENTS:
            raise ValueError(f"matcher {name}: alignment={alignment!r}; expected one of {', '.join(ALIGNMENTS)}")
        if alignment == "detect" and self.spec.landmarks is None:
            raise SpecError(f"{where}: alignment=detect but preparation={self.spec.preparation} has no landmarks "
                            "source; use a preparation of arcface5 or box with landmarks: dlib")
        self.alignment = alignment
        if alignment == "detect":
            check_landmarks_installed(self.spec, where)
        self.runtime = open_runtime(self.path, self.device)
        check_fit(self.spec, self.runtime, where)
        self.differentiable = self.spec.differentiable
        self.weights_sha256 = file_sha256(self.path)
        self.template = template_for(self.spec.input_size)
        self._detector = None
        self._dim: Optional[int] = None

    @property
    def version(self) -> str:
        """From the weights' bytes and the spec's content (not the file's name) and the alignment."""
        return f"file:weights-{self.weights_sha256[:16]}:spec-{self.spec.digest()[:16]}:{self.alignment}"

    @property
    def embedding_dim(self) -> int:
        if self._dim is None:
            grey = torch.zeros([1, 3, *self.spec.input_size], device=self.device)
            with torch.no_grad():
                self._dim = int(self.run(self.prepare(grey)).shape[1])
        return self._dim

    @property
    def detector(self):
        """dlib's landmarks (arcface5) or its HOG detector (box), built on first use."""
        if self._detector is None:
            if self.spec.preparation == "arcface5":
                from leakguard.matchers.landmarks import DlibLandmarks
                self._detector = DlibLandmarks()
            else:
                from leakguard.matchers.dlib_matcher import import_dlib
                self._detector = import_dlib().get_frontal_face_detector()
        return self._detector

    def crop_maps(self, images: torch.Tensor) -> np.ndarray | None:
        """[n, 2, 3] maps from each image to the model's crop, or None where the whole image is resized."""
        n, _, h, w = images.shape
        prep = self.spec.preparation
        if self.alignment == "none" or prep == "none":
            return None
        if prep in ("arcface5", "ffhq"):
            if self.alignment == "ffhq":
                return np.broadcast_to(align.ffhq_to_template(h, w, self.template), (n, 2, 3))
            points = np.asarray(self.detector(images.detach()), np.float64)               # [n, 5, 2]
            return np.stack([align.umeyama(p, self.template) for p in points])
        if self.alignment == "ffhq":
            from leakguard.matchers.dlib_matcher import FFHQ_BOX
            l, t, r, b = FFHQ_BOX
            boxes = [(l * w, t * h, r * w - 1, b * h - 1)] * n
        else:
            boxes = self.detect_boxes(images)
        return np.stack([box_to_crop(box_transform(box, self.spec.margin), self.spec.input_size) for box in boxes])

    def detect_boxes(self, images: torch.Tensor) -> list:
        from leakguard.matchers.dlib_matcher import NoFaceFound, largest_face, to_rgb_uint8
        boxes, missing = [], []
        for i, rgb in enumerate(to_rgb_uint8(images)):
            rect = largest_face(self.detector, rgb, 1)
            if rect is None:
                missing.append(i)
            else:
                boxes.append((rect.left(), rect.top(), rect.right(), rect.bottom()))
        if missing:
            raise NoFaceFound(f"matcher {self.name}: dlib's HOG detector found no face in {len(missing)} of "
                              f"{len(images)} images, at positions {missing[:20]} of this batch")
        return boxes

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] in [-1, 1] -> [n, 3, *input_size] crops as the spec's preparation makes them,
        differentiable in the pixels (the landmarks themselves are not)."""
        maps = self.crop_maps(images)
        if maps is None:
            if tuple(images.shape[2:]) == self.spec.input_size:
                return images
            return F.interpolate(images, size=self.spec.input_size, mode="bilinear", antialias=True,
                                 align_corners=False)
        return align.warp(images, np.ascontiguousarray(maps), self.spec.input_size)

    def prepare(self, crops: torch.Tensor) -> torch.Tensor:
        """[n, 3, h, w] RGB crops in [-1, 1] -> the model's input: 0..255 pixels in channel_order, minus
        mean, over std, laid out as `layout`."""
        x = (crops.float() + 1) * 127.5                                              # [n, 3, h, w] RGB 0..255
        if self.spec.channel_order == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.spec.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        return x.permute(0, 2, 3, 1).contiguous() if self.spec.layout == "NHWC" else x

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The model on its input x [n, ...], spec.batch at a time (the last chunk padded with zeros) -> [n, D]."""
        step = self.spec.batch or len(x)
        out = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            if len(chunk) < step:
                chunk = torch.cat([chunk, chunk.new_zeros([step - len(chunk), *chunk.shape[1:]])])
            out.append(self.runtime.run(chunk, self.spec.output)[:len(x) - i])
        return torch.cat(out).float().to(x.device)

    def embed_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.run(self.prepare(self.crop(images)))
