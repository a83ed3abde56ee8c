"""What a SynthFaces image was drawn from, as one fixed-length vector: the regression targets of the
`synthfaces` feature net (leakguard.fidelity.synth_features).

Every field of IdentityParams and Nuisance, in their declared order, except the two that are ids
(identity_id, noise_seed): floats as they are; colours as their r, g, b; pairs as x, y; hair_style,
beard and glasses one-hot over their known kinds; the angles that wrap (light_angle, bg_angle) as
(cos, sin). roll and brow_angle stay radians: they never come near the wrap. A glasses colour is 0
when there are no glasses, since nothing of that colour is drawn.
"""
import math
from dataclasses import fields

import numpy as np

from training.synthfaces.dataset import SynthFaces
from training.synthfaces.params import (BEARDS, GLASSES, HAIR_STYLES, IdentityParams, Nuisance, identity_params,
                                        nuisance_params)

SKIPPED = ("identity_id", "noise_seed")
CATEGORIES = {"hair_style": HAIR_STYLES, "beard": BEARDS, "glasses": GLASSES}
WRAPPING_ANGLES = ("light_angle", "bg_angle")
PART_NAMES = {3: ("r", "g", "b"), 2: ("x", "y")}  # tuple length -> names of its entries


def _entries(name: str, value) -> list[tuple[str, float]]:
    """(target name, value) pairs for one parameter."""
    if name in CATEGORIES:
        return [(f"{name}={kind}", float(value == k)) for k, kind in enumerate(CATEGORIES[name])]
    if name in WRAPPING_ANGLES:
        return [(f"{name}.cos", math.cos(value)), (f"{name}.sin", math.sin(value))]
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):  # bg_colors: two colours
        return [e for k, v in enumerate(value) for e in _entries(f"{name}{k}", v)]
    if isinstance(value, tuple):
        if len(value) not in PART_NAMES:
            raise ValueError(f"{name}={value!r}: a tuple of {len(value)}; targets know pairs and colours")
        return [(f"{name}.{part}", float(v)) for part, v in zip(PART_NAMES[len(value)], value)]
    return [(name, float(value))]


def _flatten(identity: IdentityParams, nuisance: Nuisance) -> list[tuple[str, float]]:
    out = []
    for params in (identity, nuisance):
        for f in fields(params):
            if f.name in SKIPPED:
                continue
            value = getattr(params, f.name)
            if f.name == "glasses_color" and identity.glasses == 0:
                value = (0.0, 0.0, 0.0)
            out += _entries(f.name, value)
    return out


TARGET_NAMES: tuple[str, ...] = tuple(name for name, _ in _flatten(identity_params(0), nuisance_params(0, 0)))


def target_group(name: str) -> str:
    """The parameter a target comes from: 'skin.r' -> 'skin', 'beard=full' -> 'beard', 'bg_colors1.g' -> 'bg_colors'."""
    base = name.split(".")[0].split("=")[0]
    return "bg_colors" if base.startswith("bg_colors") else base


def render_targets(identity_id: int, image_index: int, seed: int = 0) -> np.ndarray:
    """The targets of image `image_index` of person `identity_id` in SynthFaces `seed`, float32 [P]."""
    entries = _flatten(identity_params(identity_id, seed), nuisance_params(identity_id, image_index, seed))
    return np.array([v for _, v in entries], dtype=np.float32)


def dataset_targets(faces: SynthFaces) -> np.ndarray:
    """The targets of every item of `faces`, in its order, float32 [N, P]."""
    out = np.empty((len(faces), len(TARGET_NAMES)), np.float32)
    people = {}
    for i, (identity_id, k) in enumerate(zip(faces.identities.tolist(), faces.image_indices.tolist())):
        if identity_id not in people:
            people[identity_id] = identity_params(identity_id, faces.seed, faces.population)
        entries = _flatten(people[identity_id], nuisance_params(identity_id, k, faces.seed))
        out[i] = [v for _, v in entries]
    return out
