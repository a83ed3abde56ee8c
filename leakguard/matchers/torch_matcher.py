"""Matchers whose network is a torch module: alignment to the network's template by a differentiable
warp, normalisation, forward pass. arcface_torch, facenet, sphereface and the synth matchers are
this class with their own network, template and normalisation."""
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from leakguard.matchers import align
from leakguard.matchers.base import Matcher

ALIGNMENTS = ("ffhq", "none", "detect")


class TorchMatcher(Matcher):
    """A torch network behind the matcher interface. `alignment` says what the input images are:
    ffhq    FFHQ-aligned faces (the StyleGAN convention), any size: a fixed similarity onto `template`
    none    already the network's crop: only resized to `input_size`
    detect  any photo: five landmarks from `detector` (images -> [N, 5, 2] pixels; default dlib's
            HOG detector and 68-point predictor), then the warp
    """

    differentiable = True
    input_size: ClassVar[tuple[int, int]]  # (H, W) the network takes
    template: ClassVar[np.ndarray]         # [5, 2] landmark positions in the network's input, pixel centres at i + 0.5

    def __init__(self, net: nn.Module, device="cpu", batch_size: int = 64, alignment: str = "ffhq",
                 detector: Callable[[torch.Tensor], np.ndarray] | None = None):
        super().__init__(device=device, batch_size=batch_size)
        if alignment not in ALIGNMENTS:
            raise ValueError(f"matcher {self.name}: alignment={alignment!r}; expected one of {', '.join(ALIGNMENTS)}")
        if alignment == "detect" and detector is None:
            from leakguard.matchers.landmarks import DlibLandmarks  # imports dlib: only when asked for
            detector = DlibLandmarks()
        self.alignment = alignment
        self.detector = detector
        self.net = net.to(self.device).eval().requires_grad_(False)

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        """[n, 3, h, w] RGB in [-1, 1] -> the network's input; default: as is ((x / 255 - 0.5) / 0.5)."""
        return crops

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] in [-1, 1] -> [n, 3, *input_size] aligned crops, differentiable in the pixels."""
        h, w = images.shape[2:]
        if self.alignment == "none":
            if (h, w) == tuple(self.input_size):
                return images
            return F.interpolate(images, size=self.input_size, mode="bilinear", antialias=True, align_corners=False)
        if self.alignment == "ffhq":
            A = align.ffhq_to_template(h, w, self.template)
        else:
            points = np.asarray(self.detector(images.detach()), np.float64)   # [n, 5, 2]
            A = np.stack([align.umeyama(p, self.template) for p in points])
        return align.warp(images, A, self.input_size)

    def embed_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(self.crop(images)))
