"""The training set as the audit reads it: the dataset's files (a zip or folder, read lazily with its
identities), or SynthFaces' rendered images in memory with theirs. The evaluation during training, the
regularizer's identity banks and the DP audit's base data all read the training set through this one
function, so that they embed the same images the audit of the finished run does."""
import numpy as np
import torch

from leakguard.audit.images import ImageFiles, ImageTensor
from training.config import DataConfig
from training.data.loader import open_dataset


def training_images(data: DataConfig, dataset=None) -> ImageFiles | ImageTensor:
    """data.path's images, or the SynthFaces set of `data` (`dataset` when already open, else rendered now)."""
    if data.path is not None:
        return ImageFiles(data.path)
    faces = dataset if dataset is not None else open_dataset(data)
    pixels = torch.from_numpy(np.array(faces.render_all()))  # [N, 3, H, W] uint8, a copy: the cache is read-only
    return ImageTensor(pixels, name=f"SynthFaces {faces.name}", identities=faces.identities)
