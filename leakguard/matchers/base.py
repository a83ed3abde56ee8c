"""The matcher interface: face images in, L2-normalised identity embeddings out.

    m = build_matcher(MatcherConfig(name="dlib"))
    e = m.embed(images)            # [N, 3, H, W] uint8 or float in [-1, 1] -> [N, D] float32, unit rows, CPU
    s = e[:4] @ e[4:].T            # cosine similarities; larger means more alike
    e = m(images_on_device)        # differentiable matchers only: gradients reach the pixels

A matcher owns its preprocessing (alignment to its template, crop, resize, colour order,
normalisation); callers hand it images exactly as a generator outputs them.
"""
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from tqdm import tqdm


def to_unit_range(images: torch.Tensor, where: str = "images") -> torch.Tensor:
    """[N, 3, H, W] uint8 (0..255) or float (about [-1, 1]) -> float32 in [-1, 1], checked."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor [N, 3, H, W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] < 8 or images.shape[3] < 8:
        raise ValueError(f"{where}: expected RGB images [N, 3, H, W] with H, W >= 8, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 127.5 - 1
    if not images.is_floating_point():
        raise ValueError(f"{where}: expected uint8 or float pixels, got {images.dtype}")
    return images.float() if images.dtype != torch.float64 else images


class Matcher(ABC):
    """A face matcher: embeddings whose cosine similarity is high for the same person."""

    name: ClassVar[str]                  # registry name
    differentiable: ClassVar[bool] = False  # True: __call__ keeps the autograd graph to the pixels

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"matcher {self.name}: batch_size={batch_size} must be >= 1")
        self.device = torch.device(device)
        self.batch_size = batch_size

    @property
    @abstractmethod
    def embedding_dim(self) -> int:
        """D, the length of an embedding."""

    @property
    def version(self) -> str:
        """Identifies the weights and preprocessing; embedding caches are keyed by it."""
        return self.name

    @abstractmethod
    def embed_batch(self, images: torch.Tensor) -> torch.Tensor:
        """float32 [n, 3, H, W] in [-1, 1] on self.device -> [n, D] embeddings (any norm)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """One batch, on the images' device, with gradients where the matcher is differentiable."""
        return F.normalize(self.embed_batch(to_unit_range(images)).float(), dim=1)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Any number of images, batch_size at a time on self.device -> float32 [N, D] on the CPU."""
        to_unit_range(images[:1])  # checks shape and dtype before any work
        out = []
        starts = range(0, len(images), self.batch_size)
        for start in tqdm(starts, desc=f"embed ({self.name})", unit="batch", disable=not progress):
            batch = to_unit_range(images[start:start + self.batch_size].to(self.device))
            out.append(F.normalize(self.embed_batch(batch).float(), dim=1).cpu())
        if not out:
            return torch.zeros([0, self.embedding_dim])
        return torch.cat(out)
