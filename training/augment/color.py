"""Colour augmentations of ADA (Karras et al. 2020, appendix B.1): a random 4x4 matrix C per image,
applied to every pixel as (r, g, b, 1) -> C (r, g, b, 1).

Ops, in this order, composed by left-multiplication: brightness (add b), contrast (multiply by c), luma
flip (negate the luma component), hue rotation (rotate about the luma axis), saturation (scale the
component orthogonal to luma). "Luma" is the paper's axis v = (1, 1, 1) / sqrt(3), the mean of RGB.
1-channel images get brightness and contrast only: the other ops would act on a grey pixel as a no-op
(hue, saturation) or as an inversion that colour images never see alone (luma flip).
"""
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ColorSpec:
    """Per-op weights (multiplied by the pipe's p) and the ops' magnitudes, as in AugmentPipe."""
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    brightness_std: float = 0.2   # additive offset, image units ([-1, 1] images)
    contrast_std: float = 0.5     # log2 of the contrast factor
    hue_max: float = 1.0          # hue angle, fraction of pi
    saturation_std: float = 1.0   # log2 of the saturation factor

    def enabled(self) -> bool:
        return any(getattr(self, k) > 0 for k in ("brightness", "contrast", "lumaflip", "hue", "saturation"))


def _luma_projector(**f64) -> torch.Tensor:
    """v v^T [3, 3] for the luma axis v = (1, 1, 1) / sqrt(3)."""
    v = torch.full([3], 1 / math.sqrt(3), **f64)
    return torch.outer(v, v)


def _embed(A: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """[n, 3, 3] linear part (and [n, 3] offset) -> [n, 4, 4] acting on (r, g, b, 1)."""
    n = A.shape[0]
    C = torch.zeros([n, 4, 4], dtype=A.dtype, device=A.device)
    C[:, :3, :3] = A
    C[:, 3, 3] = 1
    if b is not None:
        C[:, :3, 3] = b
    return C


def sample_color(spec: ColorSpec, p: torch.Tensor, n: int, channels: int, device: torch.device) -> torch.Tensor:
    """Draws one C per image: [n, 4, 4] float64 on `device`. Each op with weight w > 0 fires with
    probability p * w per image and draws its numbers whether it fires or not."""
    f64 = dict(dtype=torch.float64, device=device)
    p = torch.as_tensor(p, **f64)

    def fires(weight: float) -> torch.Tensor:  # [n, 1, 1] bool
        return (torch.rand([n], **f64) < p * weight)[:, None, None]

    I3 = torch.eye(3, **f64).expand(n, 3, 3)
    C = torch.eye(4, **f64).expand(n, 4, 4)
    if spec.brightness > 0:
        b = torch.randn([n], **f64) * spec.brightness_std
        C = torch.where(fires(spec.brightness), _embed(I3, b[:, None].expand(n, 3)), torch.eye(4, **f64)) @ C
    if spec.contrast > 0:
        c = torch.exp2(torch.randn([n], **f64) * spec.contrast_std)
        C = torch.where(fires(spec.contrast), _embed(I3 * c[:, None, None]), torch.eye(4, **f64)) @ C
    if channels == 1:
        return C
    vvT = _luma_projector(**f64)
    if spec.lumaflip > 0:  # Householder reflection I - 2 v v^T; when it fires, flip or not with equal chance
        i = torch.floor(torch.rand([n], **f64) * 2)
        flip = _embed(I3 - 2 * vvT * i[:, None, None])
        C = torch.where(fires(spec.lumaflip), flip, torch.eye(4, **f64)) @ C
    if spec.hue > 0:  # Rodrigues: cos I + sin [v]x + (1 - cos) v v^T
        theta = (torch.rand([n], **f64) * 2 - 1) * math.pi * spec.hue_max
        cross = torch.tensor([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]], **f64) / math.sqrt(3)  # [v]x, v x u
        cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        R = cos * I3 + sin * cross + (1 - cos) * vvT
        C = torch.where(fires(spec.hue), _embed(R), torch.eye(4, **f64)) @ C
    if spec.saturation > 0:
        s = torch.exp2(torch.randn([n], **f64) * spec.saturation_std)[:, None, None]
        S = vvT + (I3 - vvT) * s
        C = torch.where(fires(spec.saturation), _embed(S), torch.eye(4, **f64)) @ C
    return C


def apply_color(images: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """images [n, 1 or 3, H, W], C [n, 4, 4] -> same shape. Written as broadcast multiply-adds rather
    than a matmul: a matmul may run in TF32 on GPUs, which would round every pixel to 10 bits, and the
    identity rows must give the pixels back exactly."""
    if (C == torch.eye(4, dtype=C.dtype, device=C.device)).all():
        return images
    n, channels, H, W = images.shape
    C = C.to(images.dtype)
    A, b = C[:, :3, :3, None, None], C[:, :3, 3, None, None]     # [n, 3, 3, 1, 1], [n, 3, 1, 1]
    if channels == 1:  # a grey pixel g is (g, g, g): the mean of C's output over RGB
        return images * A.sum(2).mean(1, keepdim=True) + b.mean(1, keepdim=True)
    return (A * images[:, None]).sum(2) + b                           # [n, 3, H, W]
