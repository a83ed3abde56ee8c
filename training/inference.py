"""Images from a trained generator: open one from any network file, and render seeds the way the
official scripts do (z = numpy RandomState(seed).randn(z_dim)), so a seed shows the same face as in
the official tools. `leakguard generate`, the audit of a generator and evaluation during training
all render through `generate`.
"""
import os

import numpy as np
import torch

from training.checkpoint import load_any
from training.data.images import to_uint8
from training.networks import Generator


MAX_PSI = 10.0  # |psi| beyond this moves w so far past w_avg that the images are saturated noise


def load_generator(path: str | os.PathLike, which: str = "G_ema") -> Generator:
    """`which` ('G_ema' or 'G') from a LeakGuard checkpoint, training snapshot or official pickle."""
    nets = load_any(path)
    if which not in nets:
        have = [k for k in nets if k != "extra"]
        raise ValueError(f"{path}: has no {which}; it holds {', '.join(have) or 'no networks'}")
    if not isinstance(nets[which], Generator):
        raise ValueError(f"{path}: {which} is a {type(nets[which]).__name__}, not a Generator")
    return nets[which]


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] float32: z of each seed as the official generate.py draws it."""
    return torch.from_numpy(np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds])).float()


def class_labels(G: Generator, class_idx: int | None, n: int, device) -> torch.Tensor:
    """[n, c_dim] one-hot labels of `class_idx` ([n, 0] for an unconditional generator, which ignores it)."""
    c = torch.zeros([n, G.c_dim], device=device)
    if G.c_dim == 0:
        return c
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        raise ValueError(f"the network is conditional with {G.c_dim} classes: pass --class 0..{G.c_dim - 1}")
    c[:, class_idx] = 1
    return c


@torch.no_grad()
def generate(G: Generator, seeds: list[int], device, trunc: float = 1.0, trunc_cutoff: int | None = None,
             noise_mode: str = "const", class_idx: int | None = None, batch: int = 8) -> np.ndarray:
    """[len(seeds), H, W, C] uint8 images of `seeds`, rendered `batch` at a time on `device`."""
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    if not -MAX_PSI <= trunc <= MAX_PSI:
        raise ValueError(f"truncation psi (--trunc) {trunc:g} is out of range: expected a value in [-{MAX_PSI:g}, "
                         f"{MAX_PSI:g}] (1 = none; 0.5-0.7 trades variety for typical faces)")
    G = G.to(device).eval()
    out = []
    for i in range(0, len(seeds), batch):
        chunk = seeds[i:i + batch]
        z = seed_latents(chunk, G.z_dim).to(device)                    # [n, z_dim]
        c = class_labels(G, class_idx, len(chunk), device)              # [n, c_dim]
        out.append(to_uint8(G(z, c, truncation_psi=trunc, truncation_cutoff=trunc_cutoff, noise_mode=noise_mode)))
    return np.concatenate(out)
