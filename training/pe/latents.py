"""The population of Private Evolution as latents z of the public generator, and what PE's "APIs" are for a
StyleGAN2 generator (all public: they read only the public generator and public randomness):

    RANDOM_API     z ~ N(0, I)
    VARIATION_API  z' = sqrt(1 - s^2) z + s e, e ~ N(0, I): a step of size s in (0, 1] that leaves N(0, I)
                   unchanged, so without votes the population stays the public generator's distribution
                   (a step in W, w' = w + s (w_r - w), shrinks W's spread by 1 - 2s(1 - s) per iteration and
                   drifts every face towards the average one: FD 54 -> 66..80 on SynthFaces, docs/private_evolution.md)
    render         G(z) through the mapping (truncation psi, public) and synthesis with constant noise:
                   a latent is one image, always

Randomness comes from (seed, iteration, purpose), so a resumed run draws what an uninterrupted one would.
"""
import math

import numpy as np
import torch

from training.data.images import to_uint8
from training.networks import Generator

INIT, VARY, RESAMPLE = 0, 1, 2   # purposes of the public random streams


def public_generator(seed: int, iteration: int, purpose: int) -> torch.Generator:
    words = np.random.SeedSequence([seed, iteration, purpose]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(words[0]))


def variation_steps(first: float, last: float, iterations: int) -> list[float]:
    """The step s of iteration 1..T: geometric from `first` to `last`."""
    if iterations == 1:
        return [last]
    return [first * (last / first) ** (t / (iterations - 1)) for t in range(iterations)]


def random_latents(G: Generator, n: int, generator: torch.Generator) -> torch.Tensor:
    """[n, z_dim] float32: RANDOM_API."""
    return torch.randn([n, G.z_dim], generator=generator)


def vary(z: torch.Tensor, step: float, generator: torch.Generator) -> torch.Tensor:
    """[n, z_dim]: VARIATION_API, each latent moved by `step` (module doc)."""
    return math.sqrt(1 - step ** 2) * z + step * torch.randn(z.shape, generator=generator)


@torch.no_grad()
def render(G: Generator, z: torch.Tensor, psi: float, device, batch: int) -> torch.Tensor:
    """uint8 [n, 3, H, W] images of latents z [n, z_dim]."""
    out = []
    for chunk in z.split(batch):
        c = torch.zeros([len(chunk), G.c_dim], device=device)
        img = G(chunk.to(device), c, truncation_psi=psi, noise_mode="const", update_emas=False)
        out.append(torch.from_numpy(to_uint8(img)).permute(0, 3, 1, 2))
    return torch.cat(out).contiguous()
