"""Trains the `synthfaces` feature extractor on SynthFaces people kept for it (ids from FEATURE_ID_OFFSET:
not the demo's 0.., the matchers' 100000.. or calibration's 200000..), and caches it on first use.

    path = ensure_synthfaces_features("~/.cache/leakguard/fidelity/synthfaces-32.pt", resolution=32)
    build_extractor("synthfaces", str(path))
"""
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from leakguard.cache_dirs import fidelity_root
from leakguard.fidelity.synth_features import (FeatureNet, FeatureNetSettings, load_feature_net, r2_scores,
                                               save_feature_net, train_feature_net)
from training.synthfaces.dataset import SynthFaces
from training.synthfaces.targets import TARGET_NAMES, dataset_targets, target_group

FEATURE_ID_OFFSET = 300000
DEFAULT_PEOPLE, DEFAULT_IMAGES = 2000, 2  # the cached net: many people beat many images of few (less to memorise)
MAX_INPUT = 64  # px: larger images are resized to this for the net (SynthFaces renders 32 px and up)


def default_path(resolution: int) -> Path:
    """Where the cached feature net for `resolution` px images lives: $LEAKGUARD_CACHE/fidelity/synthfaces-RES.pt."""
    return fidelity_root() / f"synthfaces-{resolution}.pt"


def train_on_synthfaces(resolution: int, people: int = DEFAULT_PEOPLE, images_per_identity: int = DEFAULT_IMAGES,
                        settings: FeatureNetSettings | None = None, identity_offset: int = FEATURE_ID_OFFSET,
                        workers: int = 1, log: Callable[[str], None] | None = print) -> tuple[FeatureNet, dict]:
    """A feature net trained on `people` x `images_per_identity` SynthFaces images at `resolution` px."""
    faces = SynthFaces(resolution, people, images_per_identity, identity_offset=identity_offset)
    images = torch.from_numpy(np.array(faces.render_all(workers)))          # [N, 3, H, W] uint8
    targets = torch.from_numpy(dataset_targets(faces))                      # [N, P]
    net, summary = train_feature_net(images, targets, settings, data_name=faces.name, log=log)
    summary.update(resolution=resolution, target_names=list(TARGET_NAMES))
    return net, summary


def group_r2(net: FeatureNet, faces: SynthFaces, workers: int = 1) -> dict[str, float]:
    """Held-out R^2 of each parameter (the mean over its target entries) and 'all' (over every entry)."""
    images = torch.from_numpy(np.array(faces.render_all(workers)))
    r2 = r2_scores(net.predict(images), torch.from_numpy(dataset_targets(faces)))  # [P]
    groups: dict[str, list[float]] = {}
    for name, score in zip(TARGET_NAMES, r2.tolist()):
        groups.setdefault(target_group(name), []).append(score)
    return {**{g: float(np.mean(s)) for g, s in groups.items()}, "all": float(r2.mean())}


def default_settings(resolution: int) -> FeatureNetSettings:
    """FeatureNetSettings' defaults with the net's input at the images' size (at most MAX_INPUT px)."""
    return FeatureNetSettings(input_size=min(MAX_INPUT, resolution // 16 * 16))


def ensure_synthfaces_features(path: str | os.PathLike | None, resolution: int, people: int = DEFAULT_PEOPLE,
                               images_per_identity: int = DEFAULT_IMAGES, settings: FeatureNetSettings | None = None,
                               workers: int = 1, log: Callable[[str], None] | None = print) -> Path:
    """`path` (None: default_path(resolution)) once it holds a feature net for `resolution` px images,
    trained now on `people` x `images_per_identity` images if the file does not exist yet. A file
    trained for another resolution is an error; an existing file is never retrained."""
    path = default_path(resolution) if path is None else Path(path).expanduser()
    if not path.is_file():
        net, summary = train_on_synthfaces(resolution, people, images_per_identity,
                                           settings or default_settings(resolution), workers=workers, log=log)
        return save_feature_net(path, net, summary)
    _, summary = load_feature_net(path)
    if summary.get("resolution") != resolution:
        raise ValueError(f"{path}: a synthfaces feature net for {summary.get('resolution')} px images, but "
                         f"{resolution} px was asked for; pass another path, or delete this file to retrain")
    return path
