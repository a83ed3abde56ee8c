"""Geometric augmentations of ADA (Karras et al. 2020, appendix B.1): a random 3x3 homogeneous matrix per
image, and the resampling that applies it without aliasing.

Coordinates are pixel centres in units of pixels, x to the right and y down, with the origin at the image
centre. A matrix `G_inv` maps an output coordinate to the input coordinate it reads from, so ops compose
by right-multiplying their inverses in the order they are applied (x-flip first, fractional translation
last), and the output is `out(q) = in(G_inv q)`.

Two ways to apply it:
  blit      signed permutations plus whole-pixel shifts (x-flip, 90-degree rotations, integer translation)
            send pixel centres to pixel centres: a gather with reflected indices, exact.
  resample  everything else: reflect-pad, upsample 2x with the sym6 low-pass, bilinear grid_sample at 2x,
            downsample 2x with the same filter reversed, crop.
"""
import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cuda_ops.upfirdn2d import downsample2d, upsample2d


@dataclass(frozen=True)
class GeomSpec:
    """Per-op weights (multiplied by the pipe's p) and the ops' magnitudes, as in AugmentPipe."""
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    xint_max: float = 0.125   # integer translation, fraction of the image size
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    scale_std: float = 0.2    # log2 of the isotropic scale
    rotate_max: float = 1.0   # rotation angle, fraction of pi
    aniso_std: float = 0.2    # log2 of the anisotropic scale
    xfrac_std: float = 0.125  # fractional translation, fraction of the image size

    def enabled(self) -> bool:
        return any(getattr(self, k) > 0 for k in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac"))


# ---------------------------------------------------------------------------------------------------
# The low-pass filter: symlet 6.

@functools.lru_cache(maxsize=None)
def sym6_taps() -> tuple[float, ...]:
    """The least-asymmetric Daubechies low-pass with 6 vanishing moments ("symlet 6", 12 taps), normalised
    to sum 1, derived here by spectral factorisation (Daubechies 1992, Ten Lectures, sec. 6.1 and 8.1).

    Why this filter: it is orthogonal, so upsampling with it and downsampling with it reversed is the
    identity (sum_k f[k] f[k + 2n] = delta_n / 2), and an image that the geometry leaves in place comes
    back unchanged; 6 vanishing moments make it a sharp half-band low-pass. Its phase is nearly, not
    exactly, linear: the group delay is handled in `resample` (see `sym6_delay`).
    """
    n = 6
    # |m0(w)|^2 = cos(w/2)^(2n) P(sin(w/2)^2), P(y) = sum_{k<n} C(n-1+k, k) y^k. Each root y of P gives
    # the root pair {z, 1/z} of y = (2 - z - 1/z) / 4 in z = exp(-iw); m0 takes one of each pair.
    P = [math.comb(n - 1 + k, k) for k in range(n)]
    pairs = []
    for y in np.roots(P[::-1]):
        b = 2 - 4 * y
        z = (b + np.sqrt(b * b - 4 + 0j)) / 2
        pairs.append((z, 1 / z))
    w = np.linspace(0.01, np.pi - 0.01, 512)
    best = None
    for choice in itertools.product((0, 1), repeat=len(pairs)):
        coeffs = np.poly([pair[c] for pair, c in zip(pairs, choice)] + [-1.0] * n)  # (1 + z)^n Q(z)
        if np.abs(coeffs.imag).max() > 1e-9:
            continue  # conjugate roots split: the filter would be complex
        taps = coeffs.real[::-1] / coeffs.real.sum()  # taps[k] multiplies z^k
        centre = float((np.arange(len(taps)) * taps).sum())
        if centre > (len(taps) - 1) / 2:
            continue  # each filter also appears reversed; keep the orientation of the published table
        # Least asymmetric: the phase closest to linear (least-squares line through 0, max residual).
        phase = np.unwrap(np.angle(np.polyval(taps[::-1], np.exp(-1j * w))))
        slope = np.dot(phase, w) / np.dot(w, w)
        residual = np.abs(phase - slope * w).max()
        if best is None or residual < best[0]:
            best = (residual, taps)
    return tuple(float(t) for t in best[1])


def sym6_delay() -> float:
    """How far (in 2x pixels) the filter's centre of mass sits from the middle of its taps. upsample2d
    assumes a symmetric filter; with sym6 the upsampled image is shifted by this much along x and y,
    and downsampling with the reversed filter shifts it back. A shift that passes through a rotation
    does not cancel (it becomes (R - I) d), so `resample` samples at the shifted positions instead."""
    taps = sym6_taps()
    return sum(k * t for k, t in enumerate(taps)) - (len(taps) - 1) / 2


# ---------------------------------------------------------------------------------------------------
# Random matrices.

def _eye(like: torch.Tensor) -> torch.Tensor:
    return torch.eye(3, dtype=like.dtype, device=like.device).repeat(len(like), 1, 1)  # [n, 3, 3]


def translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """[n] shifts -> [n, 3, 3]."""
    G = _eye(tx)
    G[:, 0, 2], G[:, 1, 2] = tx, ty
    return G


def scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """[n] factors -> [n, 3, 3]."""
    G = _eye(sx)
    G[:, 0, 0], G[:, 1, 1] = sx, sy
    return G


def rotate(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """[n] cos and sin of the angle -> [n, 3, 3] (x towards y: clockwise on screen, y pointing down)."""
    G = _eye(cos)
    G[:, 0, 0], G[:, 0, 1], G[:, 1, 0], G[:, 1, 1] = cos, -sin, sin, cos
    return G


def sample_inverse_geometry(spec: GeomSpec, p: torch.Tensor, n: int, height: int, width: int,
                            device: torch.device) -> torch.Tensor:
    """Draws one G_inv per image: [n, 3, 3] float64 on `device`.

    Each op with weight w > 0 fires with probability p * w per image (the two rotations with
    1 - sqrt(1 - p * w) each, so that some rotation happens with probability p * w). Every enabled op
    draws its numbers whether it fires or not, so the random stream does not depend on p.
    """
    f64 = dict(dtype=torch.float64, device=device)
    p = torch.as_tensor(p, **f64)

    def fires(prob) -> torch.Tensor:  # [n] bool
        return torch.rand([n], **f64) < prob

    zero, one = torch.zeros([n], **f64), torch.ones([n], **f64)
    G_inv = torch.eye(3, **f64).expand(n, 3, 3)

    if spec.xflip > 0:  # when it fires, flip or not with equal chance (as in the paper)
        flip = torch.where(fires(p * spec.xflip), torch.floor(torch.rand([n], **f64) * 2), zero)
        G_inv = G_inv @ scale(1 - 2 * flip, one)
    if spec.rotate90 > 0:  # k quarter turns, k uniform in 0..3; exact cos/sin so the blit path applies
        k = torch.floor(torch.rand([n], **f64) * 4).long()
        k = torch.where(fires(p * spec.rotate90), k, torch.zeros_like(k))
        cos = torch.tensor([1.0, 0.0, -1.0, 0.0], **f64)[k]
        sin = torch.tensor([0.0, 1.0, 0.0, -1.0], **f64)[k]
        G_inv = G_inv @ rotate(cos, -sin)
    if spec.xint > 0:  # uniform in +-xint_max of the size, rounded to whole pixels
        t = (torch.rand([n, 2], **f64) * 2 - 1) * spec.xint_max
        t = torch.where(fires(p * spec.xint)[:, None], t, 0.0)
        G_inv = G_inv @ translate(-torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height))
    if spec.scale > 0:  # log-normal: log2 s ~ N(0, scale_std^2)
        s = torch.exp2(torch.randn([n], **f64) * spec.scale_std)
        s = torch.where(fires(p * spec.scale), s, one)
        G_inv = G_inv @ scale(1 / s, 1 / s)
    p_rot = 1 - torch.sqrt((1 - p * spec.rotate).clamp(0, 1))
    if spec.rotate > 0:  # pre-rotation
        theta = (torch.rand([n], **f64) * 2 - 1) * math.pi * spec.rotate_max
        theta = torch.where(fires(p_rot), theta, zero)
        G_inv = G_inv @ rotate(torch.cos(theta), -torch.sin(theta))
    if spec.aniso > 0:  # stretch x by s and y by 1/s
        s = torch.exp2(torch.randn([n], **f64) * spec.aniso_std)
        s = torch.where(fires(p * spec.aniso), s, one)
        G_inv = G_inv @ scale(1 / s, s)
    if spec.rotate > 0:  # post-rotation: with the pre-rotation, aniso stretches along a random axis
        theta = (torch.rand([n], **f64) * 2 - 1) * math.pi * spec.rotate_max
        theta = torch.where(fires(p_rot), theta, zero)
        G_inv = G_inv @ rotate(torch.cos(theta), -torch.sin(theta))
    if spec.xfrac > 0:  # normal, std xfrac_std of the size
        t = torch.randn([n, 2], **f64) * spec.xfrac_std
        t = torch.where(fires(p * spec.xfrac)[:, None], t, 0.0)
        G_inv = G_inv @ translate(-t[:, 0] * width, -t[:, 1] * height)
    return G_inv


# ---------------------------------------------------------------------------------------------------
# Applying G_inv.

def reflect_index(i: torch.Tensor, size: int) -> torch.Tensor:
    """Folds any integer index into 0..size-1 by mirroring about the edge pixels (torch's 'reflect':
    -1 -> 1), periodically, so margins may exceed the image size."""
    if size == 1:
        return torch.zeros_like(i)
    period = 2 * size - 2
    i = i.remainder(period)
    return torch.where(i >= size, period - i, i)


def _index_map(G_inv: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """G_inv in pixel-index coordinates: in_index = A @ out_index + b, A [n, 2, 2], b [n, 2]."""
    c = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=G_inv.dtype, device=G_inv.device)
    A = G_inv[:, :2, :2]
    b = G_inv[:, :2, 2] + c - A @ c
    return A, b


def is_blit(G_inv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[n] bool: G_inv permutes pixel centres (a signed permutation and a whole-pixel shift in index
    coordinates), so a gather applies it exactly. Exact float comparisons are intended: the blit ops
    build their matrices from small integers."""
    A, b = _index_map(G_inv, height, width)
    signed_perm = ((A == 0) | (A.abs() == 1)).flatten(1).all(1) & (A.abs().sum(1) == 1).all(1) & \
                  (A.abs().sum(2) == 1).all(1)
    return signed_perm & (b == b.round()).all(1)


def blit(images: torch.Tensor, G_inv: torch.Tensor) -> torch.Tensor:
    """Applies pixel-permuting G_inv (see is_blit) with a gather; outside pixels read the reflection."""
    n, C, H, W = images.shape
    A, b = _index_map(G_inv.to(images.device), H, W)
    y, x = torch.meshgrid(torch.arange(H, dtype=A.dtype, device=A.device),
                          torch.arange(W, dtype=A.dtype, device=A.device), indexing="ij")
    out_xy = torch.stack([x.flatten(), y.flatten()])                   # [2, H*W]
    in_xy = (A @ out_xy + b[:, :, None]).round().long()                 # [n, 2, H*W]
    index = reflect_index(in_xy[:, 1], H) * W + reflect_index(in_xy[:, 0], W)  # [n, H*W]
    out = images.reshape(n, C, H * W).gather(2, index[:, None, :].expand(n, C, H * W))
    return out.reshape(n, C, H, W)


def _affine_1d(scale_xy, offset_xy) -> torch.Tensor:
    """[3, 3] float64 diagonal map (x, y) -> (sx x + ox, sy y + oy)."""
    (sx, sy), (ox, oy) = scale_xy, offset_xy
    return torch.tensor([[sx, 0, ox], [0, sy, oy], [0, 0, 1]], dtype=torch.float64)


def resample(images: torch.Tensor, G_inv: torch.Tensor) -> torch.Tensor:
    """Applies any G_inv: reflect-pad, upsample 2x (sym6), bilinear sampling at 2x, downsample 2x
    (sym6 reversed), crop. Linear in `images`; torch differentiates grid_sample twice w.r.t. its input,
    which R1 through the augmentation needs (gradgradcheck in tests/training/test_augment.py)."""
    n, C, H, W = images.shape
    G = G_inv.detach().to("cpu", torch.float64)  # small; the margins below must be Python ints anyway
    taps = torch.tensor(sym6_taps(), dtype=images.dtype, device=images.device)
    d = sym6_delay()
    e = len(taps) // 4  # the down filter reads 12 taps at 2x = 3 px beyond each output edge

    # Output canvas: the image plus e px per side, in centred coordinates, normalised [-1, 1] -> c.
    # At 2x, pixel q of the canvas stands for 1x position (q - 0.5 - d) / 2 (the filter delay d).
    out_to_c = _affine_1d((W / 2 + e, H / 2 + e), (-d / 2, -d / 2))

    # Margin: where the canvas corners land, plus the upsampling support (3 px), bilinear taps and
    # the delay (< 1 px together). The cap keeps memory bounded for extreme user-set magnitudes;
    # beyond it grid_sample reads zeros.
    corners = out_to_c @ torch.tensor([[-1.0, 1, 1, -1], [-1, -1, 1, 1], [1, 1, 1, 1]], dtype=torch.float64)
    src = G @ corners                                                    # [n, 3, 4]
    lo, hi = src[:, :2].amin(dim=(0, 2)), src[:, :2].amax(dim=(0, 2))  # [2] (x, y)
    half = torch.tensor([(W - 1) / 2, (H - 1) / 2], dtype=torch.float64)
    support = e + 1
    cap = torch.tensor([3 * W, 3 * H], dtype=torch.float64)
    m0 = (support - lo - half).clamp(0).minimum(cap).ceil().long().tolist()  # left, top
    m1 = (support + hi - half).clamp(0).minimum(cap).ceil().long().tolist()  # right, bottom
    iy = reflect_index(torch.arange(-m0[1], H + m1[1], device=images.device), H)
    ix = reflect_index(torch.arange(-m0[0], W + m1[0], device=images.device), W)
    x = images.index_select(2, iy).index_select(3, ix)                  # [n, C, Hp, Wp]
    Hp, Wp = H + m0[1] + m1[1], W + m0[0] + m1[0]
    x = upsample2d(x, taps, up=2)                                        # [n, C, 2Hp, 2Wp]

    # Centred input coordinate -> grid_sample's normalised coordinate of the padded, upsampled image,
    # with the same delay d (derived from index = c + (W-1)/2 + m0, q = 2 index + 0.5 + d).
    c_to_in = _affine_1d((2 / Wp, 2 / Hp), ((d + m0[0] - m1[0]) / Wp, (d + m0[1] - m1[1]) / Hp))
    theta = (c_to_in @ G @ out_to_c).to(device=images.device, dtype=images.dtype)  # [n, 3, 3]

    # The grid by hand rather than affine_grid: affine_grid uses a matmul, which may run in TF32.
    Ho, Wo = 2 * (H + 2 * e), 2 * (W + 2 * e)
    gy = (torch.arange(Ho, dtype=images.dtype, device=images.device) * 2 + 1) / Ho - 1  # pixel centres
    gx = (torch.arange(Wo, dtype=images.dtype, device=images.device) * 2 + 1) / Wo - 1
    t = theta[:, :, :, None, None]                                        # [n, 3, 3, 1, 1]
    grid = torch.stack([t[:, 0, 0] * gx + t[:, 0, 1] * gy[:, None] + t[:, 0, 2],
                        t[:, 1, 0] * gx + t[:, 1, 1] * gy[:, None] + t[:, 1, 2]], dim=-1)  # [n, Ho, Wo, 2]
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample2d(x, taps, down=2, padding=-2 * e, flip_filter=True)  # [n, C, H, W]


def apply_geometry(images: torch.Tensor, G_inv: torch.Tensor) -> torch.Tensor:
    """images [n, C, H, W], G_inv [n, 3, 3] -> [n, C, H, W]. Images whose G_inv only permutes pixels are
    blitted (exact: x-flips, quarter turns, whole-pixel shifts, and the identity when no op fired);
    the others are resampled. When nothing fired in the whole batch, the images come back as they are."""
    n, C, H, W = images.shape
    G = G_inv.detach().to("cpu", torch.float64)
    if (G == torch.eye(3, dtype=torch.float64)).all():
        return images
    exact = is_blit(G, H, W)
    if exact.all():
        return blit(images, G)
    if not exact.any():
        return resample(images, G)
    bi, ri = exact.nonzero()[:, 0], (~exact).nonzero()[:, 0]
    out = torch.cat([blit(images[bi.to(images.device)], G[bi]), resample(images[ri.to(images.device)], G[ri])])
    return out[torch.argsort(torch.cat([bi, ri])).to(images.device)]

