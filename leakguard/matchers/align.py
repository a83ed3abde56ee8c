"""Alignment: five facial landmarks (left eye, right eye, nose tip, left and right mouth corner, in
image coordinates where the person's left eye is on the image's right) mapped onto a matcher's
template by a similarity transform, and a differentiable warp that applies it.

Coordinates are in pixels of the image they refer to, x right and y down, with pixel centres at
i + 0.5 (so an image spans [0, W] x [0, H]).
"""
import numpy as np
import torch
import torch.nn.functional as F

# InsightFace's ArcFace template for 112 x 112 crops, in OpenCV's convention (pixel centres at
# integers); `centred` moves such points to this module's convention.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def centred(points_cv: np.ndarray) -> np.ndarray:
    """Points given with pixel centres at integers (OpenCV, InsightFace, dlib) -> centres at i + 0.5."""
    return np.asarray(points_cv, np.float64) + 0.5


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking src [K, 2] to dst [K, 2]
    (Umeyama 1991); returns the 2 x 3 matrix A with dst ~ A @ [x, y, 1]."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"umeyama: expected two [K, 2] point sets with K >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)                          # [2, 2]
    U, sig, Vt = np.linalg.svd(cov)
    E = np.diag([1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0])
    R = U @ E @ Vt
    scale = (sig * np.diag(E)).sum() / s.var(0).sum()
    t = mu_d - scale * R @ mu_s
    return np.concatenate([scale * R, t[:, None]], axis=1)


def apply(A: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ A[:, :2].T + A[:, 2]


def _ffhq_landmarks() -> np.ndarray:
    """Five landmarks of an FFHQ-aligned image, as fractions of its side.

    FFHQ's alignment (Karras et al. 2019, ffhq-dataset) crops a square of side
    2 max(2 |e2e|, 1.8 |e2m|) centred at eye_mid + 0.1 e2m, where e2e runs between the eyes and
    e2m from the eye midpoint to the mouth midpoint. Taking the face proportions of the ArcFace
    template (|e2m| / |e2e| = 1.155, so the mouth term sets the scale) puts the eye midpoint at
    (0.5, 0.4722) and the mouth midpoint at (0.5, 0.75); the template, moved there by a similarity,
    gives all five points."""
    eyes, mouth = ARCFACE_112[:2].mean(0), ARCFACE_112[3:].mean(0)
    e2m = np.linalg.norm(mouth - eyes)
    scale = 0.5 / (1.8 * e2m)  # the crop's half side (0.5 of the image) is 1.8 |e2m|
    eye_mid = np.array([0.5, 0.5 - 0.1 * e2m * scale])
    A = umeyama(np.stack([eyes, mouth]), np.stack([eye_mid, eye_mid + [0.0, e2m * scale]]))
    return apply(A, ARCFACE_112)


FFHQ_UNIT = _ffhq_landmarks()   # [5, 2], fractions of the image side


def ffhq_landmarks(height: int, width: int) -> np.ndarray:
    """The five landmarks of an FFHQ-aligned H x W image, in its pixels."""
    return FFHQ_UNIT * np.array([width, height], dtype=np.float64)


def warp(images: torch.Tensor, A: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Samples [N, C, H, W] images into [N, C, size[0], size[1]] crops where output pixel q shows input
    point A^-1 q (A: 2 x 3, or [N, 2, 3] per image, input pixels -> output pixels). Bilinear and
    differentiable; an input much larger than the crop is first downsampled with an antialiasing
    filter so that the bilinear taps do not skip pixels. Outside the image: zeros (border grey in
    [-1, 1] images is 0)."""
    n, _, h, w = images.shape
    out_h, out_w = size
    A = torch.as_tensor(A, dtype=torch.float64)
    A = A.expand(n, 2, 3) if A.ndim == 2 else A
    scale = A[:, :, :2].det().abs().sqrt()                      # [N] output px per input px
    shrink = float(scale.min())
    if shrink < 0.5:  # pre-filter: resize so the face is at most 2x the crop's scale
        factor = min(1.0, 2 * shrink)
        new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))
        images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        S = torch.diag(torch.tensor([new_w / w, new_h / h], dtype=torch.float64))
        A = torch.cat([A[:, :, :2] @ torch.linalg.inv(S), A[:, :, 2:]], dim=2)
        h, w = new_h, new_w
    # Inverse map, then to grid_sample's normalised coordinates (align_corners=False: -1 and 1 are the
    # outer edges of the corner pixels).
    M = torch.linalg.inv(torch.cat([A, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(n, 1, 3)], 1))
    to_out = torch.tensor([[2 / out_w, 0, -1], [0, 2 / out_h, -1], [0, 0, 1]], dtype=torch.float64)
    to_in = torch.tensor([[2 / w, 0, -1], [0, 2 / h, -1], [0, 0, 1]], dtype=torch.float64)
    theta = (to_in @ M @ torch.linalg.inv(to_out))[:, :2]     # normalised output -> normalised input
    grid = F.affine_grid(theta.to(images.dtype).to(images.device), [n, images.shape[1], out_h, out_w],
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def ffhq_to_template(height: int, width: int, template: np.ndarray) -> np.ndarray:
    """The similarity taking an FFHQ-aligned H x W image onto `template` [5, 2] (pixel centres at
    integer + 0.5 in both)."""
    return umeyama(ffhq_landmarks(height, width), template)
