"""Generate images from a LeakGuard checkpoint or an official StyleGAN2-ADA pickle.

Seeds give z the way the official scripts do (numpy RandomState(seed).randn), so a seed shows
the same face as in the official tools. Writes seed%04d.png per seed and, with --grid, grid.png.

examples:
  leakguard generate --network ffhq.pkl --seeds 0-15 --trunc 0.7 --outdir out/ffhq --grid
  leakguard generate --network runs/x/network-final.pt --seeds 1,5,9 --class 2
  leakguard generate --random-init --resolution 32 --seeds 0-15 --outdir out/demo --grid
"""
import argparse
import re
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import load_any
from training.images import make_grid, save_png, to_uint8
from training.networks import Generator


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    seeds = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--seeds: cannot read {part!r} in {text!r}; use e.g. 0-15 or 1,5,9")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"--seeds: range {part!r} ends before it starts")
        seeds.extend(range(lo, hi + 1))
    return seeds


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--network", type=Path, help="LeakGuard checkpoint (.pt) or official StyleGAN2-ADA pickle (.pkl)")
    src.add_argument("--random-init", action="store_true", help="an untrained generator (smoke tests, demos)")
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-7"), help="e.g. 0-15 or 1,5,9 (default 0-7)")
    p.add_argument("--trunc", type=float, default=1.0, help="truncation psi (1 = none)")
    p.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N ws (default: all)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--class", dest="class_idx", type=int, default=None, help="class index for conditional networks")
    p.add_argument("--which", choices=["G_ema", "G"], default="G_ema", help="which generator in the file")
    p.add_argument("--outdir", type=Path, required=True)
    p.add_argument("--grid", action="store_true", help="also write grid.png with all seeds")
    p.add_argument("--batch", type=int, default=8, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--resolution", type=int, default=32, help="with --random-init: image size")
    p.add_argument("--init-seed", type=int, default=0, help="with --random-init: seed of the weights")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def random_generator(resolution: int, init_seed: int) -> Generator:
    torch.manual_seed(init_seed)
    return Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=resolution, img_channels=3,
                     mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=4096, channel_max=128))


def load_generator(args) -> Generator:
    if args.random_init:
        return random_generator(args.resolution, args.init_seed)
    nets = load_any(args.network)
    if args.which not in nets:
        have = [k for k in nets if k != "extra"]
        raise ValueError(f"{args.network}: has no {args.which}; it holds {', '.join(have) or 'no networks'}")
    if not isinstance(nets[args.which], Generator):
        raise ValueError(f"{args.network}: {args.which} is a {type(nets[args.which]).__name__}, not a Generator")
    return nets[args.which]


def class_labels(G: Generator, class_idx: int | None, n: int, device) -> torch.Tensor:
    c = torch.zeros([n, G.c_dim], device=device)
    if G.c_dim == 0:
        if class_idx is not None:
            print("leakguard generate: --class ignored: the network is unconditional")
        return c
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        raise ValueError(f"the network is conditional with {G.c_dim} classes: pass --class 0..{G.c_dim - 1}")
    c[:, class_idx] = 1
    return c


@torch.no_grad()
def generate(G: Generator, seeds: list[int], device, trunc=1.0, trunc_cutoff=None, noise_mode="const",
             class_idx=None, batch=8) -> np.ndarray:
    """Returns [len(seeds), H, W, C] uint8 images."""
    G = G.to(device).eval()
    out = []
    for i in range(0, len(seeds), batch):
        chunk = seeds[i:i + batch]
        z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for s in chunk])).float().to(device)
        c = class_labels(G, class_idx, len(chunk), device)
        out.append(to_uint8(G(z, c, truncation_psi=trunc, truncation_cutoff=trunc_cutoff, noise_mode=noise_mode)))
    return np.concatenate(out)


def run(args) -> None:
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    device = resolve_device(args.device)
    G = load_generator(args)
    images = generate(G, args.seeds, device, args.trunc, args.trunc_cutoff, args.noise_mode, args.class_idx, args.batch)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for seed, img in zip(args.seeds, images):
        save_png(img, args.outdir / f"seed{seed:04d}.png")
    if args.grid:
        save_png(make_grid(images), args.outdir / "grid.png")
    print(f"wrote {len(images)} images ({G.img_resolution}x{G.img_resolution}, {device.type}) to {args.outdir}")
