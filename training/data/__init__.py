"""Training data: image datasets (dataset.py) and how they are built (build.py) into the dataset zip
(zip_format.py), the order rounds see them in (sampler.py), the per-round chunks the training
step consumes (loader.py), and the training set as the audit reads it (training_set.py). `Chunk` (a plain
step's real images) and `UnitChunk` (a private D step's units, built by training.dp.stream) are the types
the steps and the data layer share.
"""
from dataclasses import dataclass

import torch


@dataclass
class Chunk:
    """batch_gpu real images with their labels, and the chunk's index within the global batch (which
    seeds its random streams)."""
    img: torch.Tensor   # [n, C, H, W] float32 in [-1, 1]
    c: torch.Tensor     # [n, c_dim]
    index: int


@dataclass
class UnitChunk:
    """Privacy units of one private D step (training.dp), each padded to k images by repeating its own:
    no image of one unit reaches another unit's loss (training.dp.per_unit)."""
    img: torch.Tensor     # [U, k, C, H, W] float32 in [-1, 1]
    c: torch.Tensor       # [U, k, c_dim]
    weight: torch.Tensor  # [U, k]: 1 / (the unit's image count) for its images, 0 for the repeats
    index: int            # chunk index within the step (seeds its augmentation)
