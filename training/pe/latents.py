"""The population of Private Evolution as latents in W, and what PE's "APIs" are for a StyleGAN2 generator
(all public: they read only the public generator and public randomness):

    RANDOM_API     w = mapping(z), z ~ N(0, I), truncated towards w_avg by psi
    VARIATION_API  w' = w + s (w_r - w), w_r a fresh random latent: a step of size s in [0, 1] towards another
                   face, which stays inside the convex hull of W's samples (s shrinks over the iterations)
    render         synthesis(w broadcast to every layer), constant noise: a latent is one image, always

Randomness comes from (seed, iteration, purpose), so a resumed run draws what an uninterrupted one would.
"""
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


@torch.no_grad()
def random_ws(G: Generator, n: int, psi: float, generator: torch.Generator, device, batch: int) -> torch.Tensor:
    """[n, w_dim] float32 on the CPU: RANDOM_API."""
    z = torch.randn([n, G.z_dim], generator=generator)                          # [n, z_dim]
    c = torch.zeros([batch, G.c_dim], device=device)
    out = [G.mapping(chunk.to(device), c[:len(chunk)], truncation_psi=psi, update_emas=False)[:, 0].cpu()
           for chunk in z.split(batch)]
    return torch.cat(out)


def vary(G: Generator, ws: torch.Tensor, step: float, psi: float, generator: torch.Generator, device,
         batch: int) -> torch.Tensor:
    """[n, w_dim]: VARIATION_API, each latent moved by `step` towards a fresh random one."""
    return ws + step * (random_ws(G, len(ws), psi, generator, device, batch) - ws)


@torch.no_grad()
def render(G: Generator, ws: torch.Tensor, device, batch: int) -> torch.Tensor:
    """uint8 [n, 3, H, W] images of latents ws [n, w_dim]."""
    out = []
    for chunk in ws.split(batch):
        layers = chunk.to(device)[:, None, :].repeat(1, G.num_ws, 1)            # [n, num_ws, w_dim]
        out.append(torch.from_numpy(to_uint8(G.synthesis(layers, noise_mode="const"))).permute(0, 3, 1, 2))
    return torch.cat(out).contiguous()
