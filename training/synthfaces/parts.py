"""The parts of a SynthFaces face, painted back to front onto a render.Canvas.

Positions come from the identity (where things are on this person's face) plus the nuisance
(yaw moves each part sideways by its depth; expression moves the mouth and brows). Each paint call
names a bounding disc (cx, cy, r) in face units that encloses the part.
"""
import numpy as np

from training.synthfaces.params import IdentityParams, Nuisance
from training.synthfaces.sdf import box, circle, ellipse, ring, segment, stroke

# How far each part moves sideways per unit of yaw: its depth in front of the head's turning axis
# (face units). The ears sit behind the axis and move the other way.
DEPTH = {"outline": 0.02, "eyes": 0.10, "nose_root": 0.11, "nose_tip": 0.20, "mouth": 0.11,
         "chin": 0.07, "glasses": 0.14, "ears": -0.07}

SCLERA, PUPIL, LASH = (0.96, 0.95, 0.93), (0.04, 0.03, 0.03), (0.10, 0.07, 0.06)
MOUTH_INSIDE, TEETH = (0.30, 0.06, 0.08), (0.94, 0.93, 0.88)


def shade(color, k: float) -> tuple:
    return tuple(float(v) for v in np.clip(np.asarray(color) * k, 0, 1))


def head_sdf(p: IdentityParams, yaw: float):
    """An ellipse whose lower half narrows towards the chin by `jaw` (0 round .. 1 pointed)."""
    k = 0.08 + 0.32 * p.jaw
    ox = yaw * DEPTH["outline"]

    def sdf(x, y):
        yn = np.clip(y * (1 / p.face_height), 0, 1)
        return ellipse((x - ox) / (1 - k * yn * yn), y, 0.0, 0.0, p.face_width, p.face_height)
    return sdf


def hairline(p: IdentityParams, style: str):
    """(y at the centre, curvature, tilt) of the hairline y = y0 + tilt x + c x^2; hair lies above."""
    W, H = p.face_width, p.face_height
    if style == "fringe":
        brow = p.eye_y - p.eye_size * p.eye_aspect - p.brow_gap
        return brow - 0.09, 0.15 * H / W**2, 0.0
    y0 = -H * (0.62 - 0.25 * p.hairline)
    tilt = 0.3 if style == "side-part" else 0.0
    return y0, 0.55 * H / W**2, tilt


def draw_hair_back(cv, p: IdentityParams) -> None:
    W, H, v = p.face_width, p.face_height, p.hair_volume
    color = shade(p.hair_color, 0.8)  # the hair behind the head is in its shadow
    if p.hair_style_name == "long":
        top, bottom = -H - v, H * 1.15
        cy, hy = (top + bottom) / 2, (bottom - top) / 2
        cv.paint(color, (0.0, cy, hy + W), lambda x, y: box(x, y, 0.0, cy, W + v + 0.05, hy, 0.45))
    elif p.hair_style_name == "afro":
        rx, ry = W + v + 0.12, H * 0.75 + v + 0.08
        cv.paint(color, (0.0, -H * 0.3, max(rx, ry)), lambda x, y: ellipse(x, y, 0.0, -H * 0.3, rx, ry))


def draw_hair_front(cv, p: IdentityParams) -> None:
    style = p.hair_style_name
    if style == "bald":
        return
    W, H = p.face_width, p.face_height
    v = p.hair_volume * (1.8 if style == "afro" else 1.0)
    y0, c, tilt = hairline(p, style)
    rx, ry, cy = W + 0.8 * v, H + 0.6 * v, -0.4 * v

    def cap(x, y):
        edge = (y - (y0 + tilt * x + c * x * x)) / np.sqrt(1 + (tilt + 2 * c * x) ** 2)
        d = np.maximum(ellipse(x, y, 0.0, cy, rx, ry), edge)
        if style == "long":  # strands down both sides of the face, over the ears
            side = box(np.abs(x), y, W + 0.3 * v - 0.02, 0.35 * H, 0.08, 0.45 * H, 0.05)
            d = np.minimum(d, side)
        return d
    reach = max(rx, ry) + (0.35 if style == "long" else 0.1)  # the side strands reach past the cap
    cv.paint(p.hair_color, (0.0, 0.0, reach), cap)
    # A soft sheen across the crown, so the hair reads as a rounded mass rather than a flat cap.
    sheen = tuple(0.75 * h + 0.25 for h in p.hair_color)
    sy = cy - ry + 0.1
    L = 0.35 * W
    cv.paint(sheen, (-0.2 * W, sy, 0.5 * W), lambda x, y: np.maximum(
        stroke(x, y, -0.2 * W, sy, L, -0.02, 0.02 / L**2, 0.018, -0.25), cap(x, y)), opacity=0.45)


def draw_head(cv, p: IdentityParams, n: Nuisance) -> None:
    W, H = p.face_width, p.face_height
    neck_color, ear_inner = shade(p.skin, 0.82), shade(p.skin, 0.75)
    cv.paint(neck_color, (0.0, H + 0.1, 0.45), lambda x, y: box(x, y, 0.0, H + 0.1, 0.4 * W, 0.35, 0.05))
    sy = H + 0.62  # shoulders: the top of a wide ellipse, below the chin
    cv.paint(n.shirt_color, (0.0, sy, 2.2 * W), lambda x, y: ellipse(x, y, 0.0, sy, 2.2 * W, 0.45))
    cv.paint(neck_color, (0.0, sy - 0.45, 0.4 * W + 0.05),
             lambda x, y: ellipse(x, y, 0.0, sy - 0.45, 0.4 * W, 0.07))  # the collar's opening
    ey, er = p.eye_y + 0.06, p.ear_size
    for side in (-1, 1):
        ex = side * 0.97 * W + n.yaw * DEPTH["ears"]
        cv.paint(p.skin, (ex, ey, er), lambda x, y: ellipse(x, y, ex, ey, 0.6 * er, er))
        cv.paint(ear_inner, (ex, ey, er), lambda x, y: ellipse(x, y, ex + side * 0.1 * er, ey, 0.3 * er, 0.6 * er))
    cv.paint(p.skin, (0.0, 0.0, max(W, H) + 0.05), head_sdf(p, n.yaw))


def draw_beard(cv, p: IdentityParams, n: Nuisance, mouth_y: float) -> None:
    beard = ("none", "moustache", "goatee", "full")[p.beard]
    if beard in ("goatee", "full"):
        H, W = p.face_height, p.face_width
        head = head_sdf(p, n.yaw)
        if beard == "full":
            y0 = p.eye_y + p.nose_length + 0.03  # the beard starts under the cheekbones

            def sdf(x, y):
                return np.maximum(head(x, y), y0 - 0.12 * (x * (1 / W)) ** 2 - y)
        else:
            # A tuft on the point of the chin, narrower than the mouth.
            cx, cy = n.yaw * DEPTH["chin"], H - 0.05
            rx, ry = 0.5 * p.mouth_width + 0.02, min(0.11, H - mouth_y - 2 * p.lip_thickness)

            def sdf(x, y):
                return np.maximum(head(x, y), ellipse(x, y, cx, cy, rx, ry))
        cv.paint(p.hair_color, (0.0, 0.0, max(W, H) + 0.05), sdf, opacity=0.92)
    if beard != "none":
        mx, w = n.yaw * DEPTH["mouth"], p.mouth_width
        my = mouth_y - p.lip_thickness - 0.03 - 0.05 * n.mouth_open
        cv.paint(p.hair_color, (mx, my, w + 0.03),
                 lambda x, y: stroke(x, y, mx, my, 0.95 * w, -0.01, 0.05 / w**2, 0.022, taper=0.4))


def draw_eyes(cv, p: IdentityParams, n: Nuisance) -> None:
    ey, ry = p.eye_y, p.eye_size * p.eye_aspect
    for side in (-1, 1):
        ex = side * p.eye_spacing + n.yaw * DEPTH["eyes"]
        rx = p.eye_size * (1 - 0.4 * max(0.0, side * n.yaw))  # the eye turning away foreshortens
        # Each paint runs at once, so the lambdas below may read this iteration's ex and rx.
        sclera = lambda x, y: ellipse(x, y, ex, ey, rx, ry)  # noqa: E731
        bound = (ex, ey, rx + 0.01)
        cv.paint(SCLERA, bound, sclera)
        ir = p.eye_size * p.iris_ratio
        ix, iy = ex + n.gaze[0] * max(rx - 0.6 * ir, 0.0), ey + n.gaze[1] * 0.3 * ry
        cv.paint(p.iris_color, bound, lambda x, y: np.maximum(circle(x, y, ix, iy, ir), sclera(x, y)))
        cv.paint(PUPIL, bound, lambda x, y: np.maximum(circle(x, y, ix, iy, 0.45 * ir), sclera(x, y)))
        cv.paint(SCLERA, bound, lambda x, y: np.maximum(
            circle(x, y, ix - 0.3 * ir, iy - 0.3 * ir, 0.16 * ir), sclera(x, y)), opacity=0.9)  # a catchlight
        cv.paint(LASH, (ex, ey, rx + 0.03), lambda x, y: np.maximum(  # the upper lid's lash line
            ring(ellipse(x, y, ex, ey, rx, ry), 0.1 * ry + 0.004), y - ey + 0.2 * ry))


def draw_brows(cv, p: IdentityParams, n: Nuisance) -> None:
    by = p.eye_y - p.eye_size * p.eye_aspect - p.brow_gap - 0.035 * n.brow_raise
    L = p.brow_length
    for side in (-1, 1):
        bx = side * p.eye_spacing + n.yaw * DEPTH["eyes"]
        angle = -side * p.brow_angle  # rotates the outer end up for brow_angle > 0
        cv.paint(p.brow_color, (bx, by, L + 0.05),
                 lambda x, y: stroke(x, y, bx, by, L, -0.02, 0.02 / L**2, p.brow_thickness / 2, angle, 0.5))


def draw_nose(cv, p: IdentityParams, n: Nuisance) -> None:
    w, ty = p.nose_width, p.eye_y + p.nose_length
    tx, rx = n.yaw * DEPTH["nose_tip"], n.yaw * DEPTH["nose_root"]
    side = -1.0 if n.yaw > 0 else 1.0  # the bridge's shadow falls on the side turned away
    top, bottom = (rx + side * 0.2 * w, p.eye_y + 0.03), (tx + side * 0.45 * w, ty - 0.4 * w)
    cv.paint(shade(p.skin, 0.8), (tx, ty, p.nose_length + 0.05),
             lambda x, y: segment(x, y, *top, *bottom, 0.01), opacity=0.6)
    cv.paint(shade(p.skin, 0.92), (tx, ty, w), lambda x, y: ellipse(x, y, tx, ty, 0.6 * w, 0.45 * w))
    for s in (-1, 1):
        nx = tx + s * 0.5 * w
        cv.paint(shade(p.skin, 0.45), (nx, ty + 0.2 * w, 0.3 * w),
                 lambda x, y: ellipse(x, y, nx, ty + 0.2 * w, 0.28 * w, 0.15 * w))


def draw_mouth(cv, p: IdentityParams, n: Nuisance, my: float) -> None:
    mx, w, t = n.yaw * DEPTH["mouth"], p.mouth_width, p.lip_thickness
    c2 = -0.05 * n.smile / w**2  # the corners rise by 0.05 face units at smile = 1
    o = 0.05 * n.mouth_open      # half the opening at the centre; it closes towards the corners
    bound = (mx, my, w + 0.1)  # corners lift by up to 0.05 when smiling, lips open by up to 0.05
    if o > 0.002:
        cavity = lambda x, y: stroke(x, y, mx, my, 0.92 * w, 0.0, c2, o, taper=1.0)  # noqa: E731
        cv.paint(MOUTH_INSIDE, bound, cavity)
        cv.paint(TEETH, bound, lambda x, y: np.maximum(cavity(x, y), (y - my - c2 * (x - mx) ** 2) + 0.3 * o))
    cv.paint(shade(p.lip_color, 0.55), bound, lambda x, y: stroke(x, y, mx, my, w, 0.0, c2, 0.004, taper=0.3))
    # The lips hug the opening, which narrows to nothing at the corners: centre lines -+(o + t/2) + c u^2.
    upper, lower = (-o - 0.45 * t, c2 + o / w**2, 0.45 * t), (o + 0.55 * t, c2 - o / w**2, 0.55 * t)
    cv.paint(p.lip_color, bound, lambda x, y: stroke(x, y, mx, my, w, *upper))
    cv.paint(shade(p.lip_color, 1.08), bound, lambda x, y: stroke(x, y, mx, my, 0.9 * w, *lower))


def draw_glasses(cv, p: IdentityParams, n: Nuisance) -> None:
    kind = ("none", "round", "square")[p.glasses]
    if kind == "none":
        return
    gy, r, lw = p.eye_y - 0.005, 1.5 * p.eye_size + 0.015, 0.011
    gx = [side * p.eye_spacing + n.yaw * DEPTH["glasses"] for side in (-1, 1)]
    for side, cx in zip((-1, 1), gx):
        if kind == "round":
            cv.paint(p.glasses_color, (cx, gy, r + lw), lambda x, y: ring(circle(x, y, cx, gy, r), lw))
        else:
            cv.paint(p.glasses_color, (cx, gy, 1.36 * r + lw),
                     lambda x, y: ring(box(x, y, cx, gy, 1.1 * r, 0.8 * r, 0.03), lw))
        ax, bx = cx + side * 1.05 * r, side * 0.97 * p.face_width + n.yaw * DEPTH["ears"]
        cv.paint(p.glasses_color, ((ax + bx) / 2, gy, abs(bx - ax) / 2 + 0.02),
                 lambda x, y: segment(x, y, ax, gy - 0.01, bx, gy - 0.02, 0.7 * lw))
    bw = (gx[1] - gx[0]) / 2 - 1.05 * r
    if bw > 0:
        cx = (gx[0] + gx[1]) / 2
        cv.paint(p.glasses_color, (cx, gy, bw + 0.02),
                 lambda x, y: stroke(x, y, cx, gy - 0.02, bw + 0.01, 0.0, 0.01 / bw**2, 0.7 * lw, taper=0.0))


def draw_face(cv, p: IdentityParams, n: Nuisance) -> None:
    draw_hair_back(cv, p)
    draw_head(cv, p, n)
    mouth_y = p.eye_y + p.nose_length + p.mouth_gap
    draw_beard(cv, p, n, mouth_y)
    draw_hair_front(cv, p)
    draw_brows(cv, p, n)
    draw_eyes(cv, p, n)
    draw_nose(cv, p, n)
    draw_mouth(cv, p, n, mouth_y)
    draw_glasses(cv, p, n)
