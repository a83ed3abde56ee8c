"""Rasterizes a SynthFaces portrait with numpy: signed distances over the pixel grid, 1-px coverage.

Every part is a signed distance function (SDF) in face units, negative inside. A pixel covers a part by
clip(0.5 - d * pixels_per_unit, 0, 1): a linear ramp one pixel wide across the edge, which is
box-filter anti-aliasing for a straight edge and close to it for curves wider than a pixel. Parts are
painted back to front with the "over" operator, each only inside its bounding window, so small
features cost little at 256 px. Face units: the head centre is the origin, y points down, and one
unit is ZOOM * scale image half-widths (image units: the image spans [-1, 1]).
"""
import math

import numpy as np

from training.synthfaces.params import IdentityParams, Nuisance
from training.synthfaces.parts import draw_face

MIN_RESOLUTION, MAX_RESOLUTION = 32, 256
HEAD_Y = 0.05  # head centre below the image centre (image units), leaving room for the hair
ZOOM = 1.12   # image units per face unit at nuisance scale 1: the head fills about half the width


def check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) \
            or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution={resolution!r}: SynthFaces renders square images of "
                         f"{MIN_RESOLUTION} to {MAX_RESOLUTION} px (an int)")
    return int(resolution)


class Canvas:
    """A premultiplied RGBA foreground, with the face-unit coordinates of every pixel centre."""

    def __init__(self, resolution: int, nuisance: Nuisance, windowed: bool = True):
        n = self.n = resolution
        self.windowed = windowed  # False paints every part over the whole grid: the reference for windows
        g = (np.arange(n, dtype=np.float32) + np.float32(0.5)) * np.float32(2 / n) - np.float32(1)
        self.gx, self.gy = g[None, :], g[:, None]  # [1, W], [H, 1] pixel centres, image units
        s, c, sn = nuisance.scale * ZOOM, math.cos(nuisance.roll), math.sin(nuisance.roll)
        tx, ty = nuisance.shift[0], nuisance.shift[1] + HEAD_Y
        # image = t + s R(roll) face, so face = R(-roll) (image - t) / s.
        ux, uy = self.gx - np.float32(tx), self.gy - np.float32(ty)
        self.x = (np.float32(c / s) * ux + np.float32(sn / s) * uy)  # [H, W] face units
        self.y = (np.float32(-sn / s) * ux + np.float32(c / s) * uy)  # [H, W]
        self.px = n / 2 * s  # pixels per face unit
        self.rgb = np.zeros((n, n, 3), np.float32)  # premultiplied by alpha
        self.alpha = np.zeros((n, n), np.float32)
        self._to_image = (tx, ty, s, c, sn)

    def window(self, cx: float, cy: float, r: float):
        """Rows and columns a disc of radius r around face point (cx, cy) can touch, or None."""
        if not self.windowed:
            return slice(None), slice(None)
        tx, ty, s, c, sn = self._to_image
        half = self.n / 2
        px = (tx + s * (c * cx - sn * cy) + 1) * half - 0.5
        py = (ty + s * (sn * cx + c * cy) + 1) * half - 0.5
        rad = r * self.px + 1.5  # the coverage ramp reaches half a pixel past the edge
        x0, x1 = max(0, math.floor(px - rad)), min(self.n, math.ceil(px + rad) + 1)
        y0, y1 = max(0, math.floor(py - rad)), min(self.n, math.ceil(py + rad) + 1)
        return (slice(y0, y1), slice(x0, x1)) if x0 < x1 and y0 < y1 else None

    def paint(self, color, bound: tuple, sdf, opacity: float = 1.0) -> None:
        """Composites `color` over the canvas where sdf(x, y) < 0; `bound` = (cx, cy, r) encloses it."""
        win = self.window(*bound)
        if win is None:
            return
        d = sdf(self.x[win], self.y[win])
        a = np.float32(0.5) - d * np.float32(self.px)  # coverage: a 1 px ramp across the edge
        np.minimum(np.maximum(a, np.float32(0), out=a), np.float32(opacity), out=a)  # np.clip costs more here
        rgb = self.rgb[win]
        rgb *= (np.float32(1) - a)[..., None]
        rgb += a[..., None] * np.asarray(color, np.float32)
        alpha = self.alpha[win]
        alpha *= np.float32(1) - a
        alpha += a


def composite(canvas: Canvas, nuisance: Nuisance) -> np.ndarray:
    """Lit foreground over the background gradient, plus pixel noise -> [H, W, 3] uint8."""
    n = nuisance
    # A linear brightness ramp across the face: a distant light from direction light_angle.
    la = n.light_angle
    lx, ly = canvas.gx - np.float32(n.shift[0]), canvas.gy - np.float32(n.shift[1] + HEAD_Y)
    light = np.float32(1) + np.float32(n.light_strength * math.cos(la)) * lx \
        + np.float32(n.light_strength * math.sin(la)) * ly  # [H, W]
    ba = n.bg_angle
    t = np.clip(np.float32(0.5) + np.float32(0.5 * math.cos(ba)) * canvas.gx
                + np.float32(0.5 * math.sin(ba)) * canvas.gy, 0, 1)  # [H, W]
    c0, c1 = np.asarray(n.bg_colors[0], np.float32), np.asarray(n.bg_colors[1], np.float32)
    out = (np.float32(1) - canvas.alpha)[..., None] * (c0 + t[..., None] * (c1 - c0))
    out += canvas.rgb * light[..., None]
    if n.noise_sigma > 0:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([n.noise_seed])))
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(n.noise_sigma)
    np.clip(out, 0, 1, out=out)
    return (out * np.float32(255) + np.float32(0.5)).astype(np.uint8)


def render_face(identity: IdentityParams, nuisance: Nuisance, resolution: int) -> np.ndarray:
    """One SynthFaces portrait -> [resolution, resolution, 3] uint8 (sRGB)."""
    resolution = check_resolution(resolution)
    if not isinstance(identity, IdentityParams) or not isinstance(nuisance, Nuisance):
        raise TypeError(f"render_face needs (IdentityParams, Nuisance), got ({type(identity).__name__}, "
                        f"{type(nuisance).__name__}); make them with identity_params() and nuisance_params()")
    canvas = Canvas(resolution, nuisance)
    draw_face(canvas, identity, nuisance)
    return composite(canvas, nuisance)
