"""Signed distance functions over numpy grids: (x, y) arrays -> distance, negative inside.

Coverage only needs the distance to be right near the edge (within about a pixel), so the ellipse
and curved strokes use first-order approximations that are exact on the boundary. Scalar arguments
are Python floats, so float32 grids stay float32 (NumPy treats Python scalars as weakly typed).
"""
import math

import numpy as np


def circle(x, y, cx, cy, r):
    return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def ellipse(x, y, cx, cy, rx, ry):
    """Ellipse distance to first order, d = (k0 - 1) k0 / k1 (Inigo Quilez, "Ellipse - distance")."""
    qx, qy = (x - cx) * (1 / rx), (y - cy) * (1 / ry)
    k0 = np.sqrt(qx * qx + qy * qy)  # 1 on the boundary
    k1 = np.sqrt((qx * (1 / rx)) ** 2 + (qy * (1 / ry)) ** 2)  # |grad k0|
    # k0 / k1 -> between rx and ry at the centre; eps keeps it finite there (and the centre inside).
    eps = 1e-6
    return (k0 - 1) * ((k0 + eps) / (k1 + eps / min(rx, ry)))


def box(x, y, cx, cy, hx, hy, r=0.0):
    """Rectangle of half-sizes (hx, hy) with corners rounded by r."""
    qx = np.abs(x - cx) - (hx - r)
    qy = np.abs(y - cy) - (hy - r)
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def segment(x, y, ax, ay, bx, by, r):
    """Capsule: points within r of the segment a-b."""
    pax, pay, bax, bay = x - ax, y - ay, bx - ax, by - ay
    h = np.clip((pax * bax + pay * bay) * (1 / max(bax * bax + bay * bay, 1e-12)), 0, 1)
    return np.sqrt((pax - bax * h) ** 2 + (pay - bay * h) ** 2) - r


def stroke(x, y, cx, cy, half_len, c0, c2, thickness, angle=0.0, taper=0.5):
    """A curved stroke: points within `thickness` of v = c0 + c2 u^2 for |u| <= half_len.

    (u, v) are the stroke's axes, centred on (cx, cy) and turned by `angle` (radians, y down). The
    thickness shrinks by `taper` towards the ends. Vertical offset over the slope's secant is the
    distance to first order; parabolas this shallow never need better.
    """
    dx, dy = x - cx, y - cy
    if angle:
        ca, sa = math.cos(angle), math.sin(angle)
        dx, dy = ca * dx + sa * dy, ca * dy - sa * dx
    t2 = dx * dx * (1 / (half_len * half_len))
    across = np.abs(dy - (c0 + c2 * dx * dx)) / np.sqrt(1 + (2 * c2) ** 2 * (dx * dx))
    return np.maximum(across - thickness * (1 - taper * t2), np.abs(dx) - half_len)


def ring(d, half_width):
    """The outline of a shape: points within half_width of its edge."""
    return np.abs(d) - half_width
