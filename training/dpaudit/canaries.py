"""Canaries for the one-run privacy audit (leakguard.dpaudit): m units at the privacy unit — single
images for privacy.unit=image, people with k images each for privacy.unit=identity — each put into the
training set independently with probability 1/2, drawn from a recorded seed.

    canaries = synthfaces_canaries(m=64, k=4, resolution=32, seed=0)     # made to stand out
    canaries = folder_canaries("my_canaries/", unit="identity")            # a folder per person
    included = inclusion(len(canaries), seed=0)                            # bool [m], reproducible
    write_training_zip(out, base, canaries, included)                      # the audited run's data

SynthFaces canaries are people never in any dataset LeakGuard makes (ids from CANARY_OFFSET) who
wear an unusual attribute: a saturated square patch of a colour and place of their own, on every one of
their images. Nothing in the training data looks like it, so a model that remembers a canary shows
it: the strongest canaries a black-box audit can use.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leakguard.audit.images import ImageFiles
from leakguard.identity_data import read_identity_images
from training.data.zip_format import DatasetZipWriter, Record
from training.synthfaces import SynthFaces

CANARY_OFFSET = 900000       # identity ids of SynthFaces canaries (disjoint from every other range used here)
MAX_CANARIES = 10_000        # m: the one-run bound's cost grows with m; the paper's audits use up to a few thousand
MAX_CANARY_BYTES = 4 * 2 ** 30   # the canary images are held in memory (and scored, and mixed into train.zip)


@dataclass
class Canaries:
    images: np.ndarray       # uint8 [N, H, W, 3]: every canary image
    unit: np.ndarray         # int64 [N]: the canary (0..m-1) each image belongs to
    identity: np.ndarray     # int64 [m]: each canary's identity id in the training zip
    source: str

    def __len__(self) -> int:
        return len(self.identity)


def _patch(img: np.ndarray, rng: np.random.Generator) -> None:
    """A saturated square of a random colour at a random place, about a fifth of the side (in place)."""
    h, w, _ = img.shape
    side = max(3, h // 5)
    y, x = rng.integers(0, h - side), rng.integers(0, w - side)
    colour = np.zeros(3, np.uint8)
    colour[rng.integers(0, 3)] = 255
    colour[rng.integers(0, 3)] = rng.integers(0, 256)
    img[y:y + side, x:x + side] = colour


def synthfaces_canaries(m: int, k: int, resolution: int, seed: int = 0) -> Canaries:
    """m SynthFaces people (ids CANARY_OFFSET..) with k images each, each person with a patch of their own."""
    if m < 2 or k < 1:
        raise ValueError(f"canaries: need m >= 2 canaries with k >= 1 images each, got m={m}, k={k}")
    faces = SynthFaces(resolution, num_identities=m, images_per_identity=k, identity_offset=CANARY_OFFSET, seed=seed)
    images = np.ascontiguousarray(faces.render_all().transpose(0, 2, 3, 1))           # [m k, H, W, 3]
    unit = np.repeat(np.arange(m), k)
    for c in range(m):
        rng = np.random.default_rng([seed, c])
        state = rng.bit_generator.state
        for i in np.flatnonzero(unit == c):
            rng.bit_generator.state = state                   # the same patch on each of a person's images
            _patch(images[i], rng)
    return Canaries(images, unit, CANARY_OFFSET + np.arange(m, dtype=np.int64),
                    f"synthfaces canaries m={m} k={k} seed={seed} (ids {CANARY_OFFSET}..)")


def folder_canaries(path: Path, unit: str, first_id: int = CANARY_OFFSET) -> Canaries:
    """A user's canaries: with unit=image every image is one; with unit=identity every person (dataset.json
    identities, e.g. from `leakguard dataset --layout identity-folders`) is one."""
    if unit == "identity":
        pixels, ids = read_identity_images(Path(path))                    # [N, 3, H, W], [N]
        images, ids = pixels.permute(0, 2, 3, 1).numpy(), ids.numpy()
    else:
        files = ImageFiles(path)
        images = np.concatenate([b.permute(0, 2, 3, 1).numpy() for b in files.batches(256)])    # [N, H, W, 3]
        ids = np.arange(len(files))
    people, unit_of = np.unique(ids, return_inverse=True)
    if len(people) < 2:
        raise ValueError(f"{path}: {len(people)} canary unit(s); the audit needs at least 2")
    return Canaries(np.ascontiguousarray(images, np.uint8), unit_of.astype(np.int64),
                    first_id + np.arange(len(people), dtype=np.int64), f"folder {path} ({unit})")


def inclusion(m: int, seed: int) -> np.ndarray:
    """bool [m]: each canary in with probability 1/2, independently, from `seed` (recorded in canaries.json)."""
    return np.random.default_rng([seed, 0xCA7A]).random(m) < 0.5


def write_training_zip(path: Path, base_images, base_ids, canaries: Canaries, included: np.ndarray) -> Path:
    """The audited run's dataset: the base images (uint8 [N, H, W, 3] batches) with their identities,
    then every image of the included canaries."""
    with DatasetZipWriter(path) as w:
        for img, i in zip(base_images, base_ids):
            w.add(Record(np.ascontiguousarray(img), identity=int(i)))
        for j in np.flatnonzero(included[canaries.unit]):
            w.add(Record(canaries.images[j], identity=int(canaries.identity[canaries.unit[j]])))
    return path


def canary_record(canaries: Canaries, included: np.ndarray, seed: int, unit: str, audit: dict | None = None) -> dict:
    """canaries.json: the canaries, who is in, and (`audit`) what the audit trained: the config, the white-box
    canaries, the run folder."""
    record = {"source": canaries.source, "unit": unit, "seed": seed, "m": len(canaries),
              "images_per_canary": np.bincount(canaries.unit, minlength=len(canaries)).tolist(),
              "identity": canaries.identity.tolist(), "included": included.astype(int).tolist(),
              "note": "canary images exist only in this audit's train.zip: no fidelity reference set, "
                      "evaluation or other dataset of LeakGuard holds them"}
    if audit is not None:
        record["audit"] = audit
    return record


def read_canaries(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no canary record; run `leakguard dp-audit` into that folder first")
    return json.loads(path.read_text())


SYNTH_SOURCE = re.compile(r"^synthfaces canaries m=(\d+) k=(\d+) seed=(-?\d+) ")
FOLDER_SOURCE = re.compile(r"^folder (.+) \((image|identity)\)$")


def canaries_from_record(record: dict, resolution: int) -> Canaries:
    """The canaries a canaries.json describes, rebuilt (SynthFaces) or read again (a folder)."""
    if found := SYNTH_SOURCE.match(record["source"]):
        m, k, seed = map(int, found.groups())
        return synthfaces_canaries(m, k, resolution, seed)
    if found := FOLDER_SOURCE.match(record["source"]):
        return folder_canaries(Path(found.group(1)), found.group(2))
    raise ValueError(f"canaries.json: source {record['source']!r} is neither SynthFaces canaries nor a folder")
