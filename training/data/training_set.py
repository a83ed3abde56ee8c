"""The training set as the audit reads it: the dataset's files (a zip or folder, read lazily with its
identities), or SynthFaces' rendered images in memory with theirs. The evaluation during training, the
regularizer's identity banks and the DP audit's base data all read the training set through this one
function, so that they embed the same images the audit of the finished run does."""
import hashlib
from pathlib import Path

import numpy as np
import torch

from leakguard.audit.images import ImageFiles, ImageTensor
from training.config import DataConfig
from training.data.loader import open_dataset


def fingerprint(data: DataConfig, dataset) -> str | None:
    """A digest of the training data's content, recorded in checkpoints so that a later run can tell whether a
    model saw its data (train.init under DP): a dataset zip's names and CRCs (its central directory, cheap),
    or SynthFaces' settings, which fix every image. None for an image folder (hashing it would read every
    byte at every start); its name and size stand in."""
    if data.path is None:
        return hashlib.sha256(f"synthfaces\0{dataset.name}\0{len(dataset)}".encode()).hexdigest()
    if Path(data.path).is_file():
        return ImageFiles(data.path).fingerprint
    return None


def training_images(data: DataConfig, dataset=None) -> ImageFiles | ImageTensor:
    """data.path's images, or the SynthFaces set of `data` (`dataset` when already open, else rendered now)."""
    if data.path is not None:
        return ImageFiles(data.path)
    faces = dataset if dataset is not None else open_dataset(data)
    pixels = torch.from_numpy(np.array(faces.render_all()))  # [N, 3, H, W] uint8, a copy: the cache is read-only
    return ImageTensor(pixels, name=f"SynthFaces {faces.name}", identities=faces.identities)
