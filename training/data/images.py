"""Generator output to pictures: [-1, 1] float tensors to uint8 arrays, PNG files and grids."""
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> [N, H, W, C] uint8, rounding as the official generate script does."""
    if img.ndim != 4 or img.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, 1 or 3, H, W], got {tuple(img.shape)}")
    img = (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return img.permute(0, 2, 3, 1).cpu().numpy()


def save_png(array: np.ndarray, path: str | Path) -> None:
    """Saves one [H, W, C] uint8 image (C = 1 or 3)."""
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)


def make_grid(arrays: np.ndarray, cols: int | None = None) -> np.ndarray:
    """[N, H, W, C] -> one [rows*H, cols*W, C] image, filled row by row, blank cells black."""
    n, h, w, c = arrays.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=arrays.dtype)
    for i, a in enumerate(arrays):
        r, k = divmod(i, cols)
        grid[r * h:(r + 1) * h, k * w:(k + 1) * w] = a
    return grid
