"""Identity and nuisance parameters of SynthFaces, drawn from counter-based seeds.

Identity parameters are a function of (seed, identity_id) only; nuisance parameters of
(seed, identity_id, image_index) only. Each call builds its own
`np.random.Generator(PCG64(SeedSequence([seed, identity_id, TAG, ...])))`, so no global RNG state is
read or changed and any item can be drawn alone, in any order, in any process.

Lengths are in face units: the origin is the head centre, y points down, and one unit is about the
image's half-width (render.ZOOM of it at nuisance scale 1). Colours are sRGB triples in [0, 1].

The order of the draws below is part of the dataset's definition: reordering them, or changing a
range, changes every SynthFaces image ever rendered.
"""
import math
from dataclasses import dataclass

import numpy as np

from training.synthfaces.populations import population as find_population

# SeedSequence pads short entropy with zeros and splits ints >= 2**32 into 32-bit words, so
# [s, i, 0] == [s, i] and [2**32, 5] == [0, 1, 5]. Non-zero tags in the third word keep the identity
# and nuisance streams apart, and the bound below keeps every entropy word a single word.
_IDENTITY_TAG = 1
_NUISANCE_TAG = 2
MAX_SEED = 2**32  # seed, identity_id and image_index must lie in [0, MAX_SEED)

HAIR_STYLES = ("bald", "short", "long", "fringe", "afro", "side-part")
BEARDS = ("none", "moustache", "goatee", "full")
GLASSES = ("none", "round", "square")

# Palettes span the attribute; a draw interpolates between neighbours (skin) or picks an entry
# (hair, iris, frames) and adds jitter, so the same entry still gives a slightly different colour.
SKIN_TONES = np.array([(0.98, 0.86, 0.77), (0.94, 0.78, 0.65), (0.87, 0.67, 0.52), (0.76, 0.55, 0.40),
                       (0.62, 0.43, 0.30), (0.47, 0.31, 0.21), (0.34, 0.22, 0.15)])
# black, dark brown, brown, auburn, ginger, blond, platinum, grey
HAIR_COLORS = np.array([(0.07, 0.06, 0.06), (0.24, 0.15, 0.09), (0.44, 0.29, 0.16), (0.55, 0.22, 0.10),
                        (0.82, 0.43, 0.17), (0.90, 0.76, 0.44), (0.95, 0.92, 0.80), (0.58, 0.58, 0.58)])
IRIS_COLORS = np.array([(0.24, 0.13, 0.06), (0.45, 0.27, 0.12), (0.52, 0.46, 0.20), (0.22, 0.55, 0.30),
                        (0.22, 0.45, 0.82), (0.48, 0.58, 0.68)])
FRAME_COLORS = np.array([(0.05, 0.05, 0.05), (0.40, 0.22, 0.10), (0.75, 0.12, 0.12), (0.12, 0.25, 0.70),
                         (0.75, 0.75, 0.78), (0.80, 0.65, 0.25)])
SHIRT_COLORS = np.array([(0.15, 0.17, 0.22), (0.85, 0.85, 0.82), (0.30, 0.38, 0.55), (0.45, 0.20, 0.20),
                         (0.30, 0.42, 0.30), (0.55, 0.52, 0.45)])
LIP_RED = np.array((0.78, 0.24, 0.30))

# (low, high) of each uniform identity parameter, in face units unless noted. Ranges are wide next
# to the nuisance below so that a person stays recognisable across their images.
IDENTITY_RANGES = {
    "face_width": (0.40, 0.54),      # half-width of the head
    "face_height": (0.52, 0.66),     # half-height of the head
    "jaw": (0.0, 1.0),               # 0 square jaw .. 1 narrow, pointed chin
    "eye_spacing": (0.15, 0.23),     # half the distance between the eye centres
    "eye_y": (-0.04, 0.06),          # eye line, below the head centre
    "eye_size": (0.055, 0.085),      # half-width of the eye
    "eye_aspect": (0.45, 0.75),      # eye height / width
    "iris_ratio": (0.45, 0.70),      # iris radius / eye half-width
    "brow_thickness": (0.016, 0.042),
    "brow_length": (0.07, 0.12),     # half-length
    "brow_gap": (0.05, 0.10),        # brow above the eye centre, beyond the eye's half-height
    "brow_angle": (-0.35, 0.35),     # radians; > 0 lifts the outer ends
    "nose_length": (0.12, 0.23),     # eye line to nose tip
    "nose_width": (0.045, 0.09),     # half-width at the nostrils
    "mouth_width": (0.11, 0.20),     # half-width
    "mouth_gap": (0.07, 0.13),       # nose tip to mouth line
    "lip_thickness": (0.014, 0.034),
    "lip_redness": (0.25, 0.75),     # lip colour = mix(skin, LIP_RED, this), darkened
    "hair_volume": (0.03, 0.10),     # thickness of hair above the scalp
    "hairline": (0.0, 1.0),          # 0 high forehead .. 1 low
    "ear_size": (0.07, 0.12),        # half-height of an ear
}


@dataclass(frozen=True)
class IdentityParams:
    """What makes one SynthFaces person: fixed across all their images."""
    identity_id: int
    face_width: float
    face_height: float
    jaw: float
    skin: tuple
    eye_spacing: float
    eye_y: float
    eye_size: float
    eye_aspect: float
    iris_ratio: float
    iris_color: tuple
    brow_thickness: float
    brow_length: float
    brow_gap: float
    brow_angle: float
    brow_color: tuple
    nose_length: float
    nose_width: float
    mouth_width: float
    mouth_gap: float
    lip_thickness: float
    lip_color: tuple
    hair_volume: float
    hairline: float
    hair_color: tuple
    hair_style: int      # index into HAIR_STYLES
    ear_size: float
    beard: int           # index into BEARDS
    glasses: int         # index into GLASSES
    glasses_color: tuple

    @property
    def hair_style_name(self) -> str:
        return HAIR_STYLES[self.hair_style]


@dataclass(frozen=True)
class Nuisance:
    """What changes from one image of a person to the next (pose, expression, light, camera)."""
    yaw: float            # ~sin(head yaw): shifts features sideways by yaw x their depth
    roll: float           # in-plane rotation, radians
    scale: float          # face size, 1 = nominal
    shift: tuple          # (x, y) translation, image half-widths
    smile: float          # mouth-corner lift, < 0 frown
    mouth_open: float     # 0 closed .. 1 wide open
    brow_raise: float     # -1 lowered .. 1 raised
    gaze: tuple           # (x, y) iris offset, fractions of the free travel
    light_angle: float    # direction the light comes from, radians in image coordinates
    light_strength: float  # brightness change across the face, relative
    bg_colors: tuple      # two sRGB triples, the ends of the background gradient
    bg_angle: float       # direction of the background gradient, radians
    noise_sigma: float    # std of Gaussian pixel noise, in [0, 1] units
    noise_seed: int       # seeds the pixel noise
    shirt_color: tuple    # sRGB of the clothes at the bottom of the image

    @classmethod
    def neutral(cls) -> "Nuisance":
        """Frontal, centred, expressionless, evenly lit, grey background, no noise."""
        grey = (0.55, 0.55, 0.55)
        return cls(yaw=0.0, roll=0.0, scale=1.0, shift=(0.0, 0.0), smile=0.3, mouth_open=0.0, brow_raise=0.0,
                   gaze=(0.0, 0.0), light_angle=0.0, light_strength=0.0, bg_colors=(grey, grey), bg_angle=0.0,
                   noise_sigma=0.0, noise_seed=0,
                   shirt_color=(0.35, 0.38, 0.45))


def _check_counter(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < MAX_SEED:
        raise ValueError(f"{name}={value!r}: must be an int in [0, 2**32)")
    return int(value)


def _rng(*words: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(words))))


def _color(rng: np.random.Generator, base, jitter: float) -> tuple:
    c = np.clip(np.asarray(base) + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)
    return tuple(float(v) for v in c)


def identity_params(identity_id: int, seed: int = 0, population: str = "all") -> IdentityParams:
    """The person `identity_id` of the dataset `seed` drawn from `population` (populations.POPULATIONS);
    depends on nothing else."""
    identity_id, seed = _check_counter("identity_id", identity_id), _check_counter("seed", seed)
    pop = find_population(population)
    rng = _rng(seed, identity_id, _IDENTITY_TAG)
    p = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in IDENTITY_RANGES.items()}
    t = rng.uniform(*pop.skin)
    k = min(int(t), len(SKIN_TONES) - 2)
    skin = _color(rng, SKIN_TONES[k] * (k + 1 - t) + SKIN_TONES[k + 1] * (t - k), 0.03)
    hair = _color(rng, HAIR_COLORS[rng.choice(len(HAIR_COLORS), p=pop.hair)], 0.04)
    # Brows are a darker shade of the hair; very light hair gets visibly darker brows.
    brow = _color(rng, np.asarray(hair) * rng.uniform(0.45, 0.8), 0.02)
    iris = _color(rng, IRIS_COLORS[rng.integers(len(IRIS_COLORS))], 0.04)
    lip = _color(rng, (np.asarray(skin) * (1 - p["lip_redness"]) + LIP_RED * p["lip_redness"]) * 0.85, 0.02)
    hair_style = int(rng.integers(len(HAIR_STYLES)))
    # In "all", most people have neither beard nor glasses, as in face datasets.
    beard = int(rng.choice(len(BEARDS), p=pop.beard))
    glasses = int(rng.choice(len(GLASSES), p=pop.glasses))
    glasses_color = _color(rng, FRAME_COLORS[rng.integers(len(FRAME_COLORS))], 0.03)
    del p["lip_redness"]
    return IdentityParams(identity_id=identity_id, skin=skin, iris_color=iris, brow_color=brow, lip_color=lip,
                          hair_color=hair, hair_style=hair_style, beard=beard, glasses=glasses,
                          glasses_color=glasses_color, **p)


def _background(rng: np.random.Generator) -> tuple:
    """Two ends of a muted gradient: any hue, low saturation, so faces stand out."""
    hue = rng.uniform(0, 2 * np.pi)
    sat, val = rng.uniform(0.03, 0.2), rng.uniform(0.45, 0.9)
    # Hue as a direction in the plane orthogonal to grey: a cheap, smooth HSV stand-in.
    a, b = np.array([1.0, -0.5, -0.5]), np.array([0.0, 0.866, -0.866])
    top = np.clip(val * (1 + sat * (math.cos(hue) * a + math.sin(hue) * b)), 0, 1)
    bottom = np.clip(top * rng.uniform(0.7, 1.1), 0, 1)
    return tuple(float(v) for v in top), tuple(float(v) for v in bottom)


def nuisance_params(identity_id: int, image_index: int, seed: int = 0) -> Nuisance:
    """Pose, expression, light and camera of image `image_index` of person `identity_id`."""
    identity_id, seed = _check_counter("identity_id", identity_id), _check_counter("seed", seed)
    image_index = _check_counter("image_index", image_index)
    rng = _rng(seed, identity_id, _NUISANCE_TAG, image_index)
    yaw = float(rng.uniform(-0.45, 0.45))
    roll = float(np.clip(rng.normal(0, 0.07), -0.18, 0.18))
    scale = float(rng.uniform(0.92, 1.06))
    shift = (float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05)))
    smile = float(rng.uniform(-0.3, 1.0))
    mouth_open = float(rng.uniform(0, 1)) if rng.random() < 0.35 else 0.0
    brow_raise = float(rng.uniform(-1, 1))
    gaze = (float(rng.uniform(-1, 1)), float(rng.uniform(-0.6, 0.6)))
    light_angle, light_strength = float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 0.35))
    bg_colors, bg_angle = _background(rng), float(rng.uniform(0, 2 * np.pi))
    noise_sigma = float(rng.uniform(0, 0.02))
    noise_seed = int(rng.integers(MAX_SEED))
    shirt_color = _color(rng, SHIRT_COLORS[rng.integers(len(SHIRT_COLORS))], 0.05)
    return Nuisance(yaw=yaw, roll=roll, scale=scale, shift=shift, smile=smile, mouth_open=mouth_open,
                    brow_raise=brow_raise, gaze=gaze, light_angle=light_angle, light_strength=light_strength,
                    bg_colors=bg_colors, bg_angle=bg_angle, noise_sigma=noise_sigma, noise_seed=noise_seed,
                    shirt_color=shirt_color)
