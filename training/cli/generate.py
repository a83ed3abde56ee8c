"""Generate images from a LeakGuard checkpoint or an official StyleGAN2-ADA pickle.

Seeds give z the way the official scripts do (numpy RandomState(seed).randn), so a seed shows
the same face as in the official tools. Writes seed%04d.png per seed and, with --grid, grid.png.

examples:
  leakguard generate --network ffhq.pkl --seeds 0-15 --trunc 0.7 --outdir out/ffhq --grid
  leakguard generate --network runs/x-0/checkpoints/snapshot-0000030000.pt --seeds 1,5,9 --class 2
  leakguard generate --random-init --resolution 32 --seeds 0-15 --outdir out/demo --grid
"""
import argparse
import re
from pathlib import Path

import torch

from leakguard.cli.options import check_new_files, check_output_folder, finite_float, resolve_device
from training.data.images import make_grid, save_png
from training.inference import generate, load_generator
from training.networks import Generator


MAX_SEEDS = 1_000_000      # images one command renders; more is a typo, not a plan
MAX_SEED = 2 ** 32 - 1     # numpy RandomState seeds


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]; each seed once, at most MAX_SEEDS of them."""
    ranges, count = [], 0
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--seeds: cannot read {part!r} in {text!r}; use e.g. 0-15 or 1,5,9")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"--seeds: range {part!r} ends before it starts")
        if hi > MAX_SEED:
            raise ValueError(f"--seeds: {hi} is above the largest seed, {MAX_SEED}")
        count += hi - lo + 1
        if count > MAX_SEEDS:
            raise ValueError(f"--seeds {text}: more than {MAX_SEEDS:,} seeds; render fewer at a time")
        ranges.append((lo, hi))
    seeds = [s for lo, hi in ranges for s in range(lo, hi + 1)]
    if len(set(seeds)) != len(seeds):
        first = next(s for i, s in enumerate(seeds) if s in seeds[:i])
        raise ValueError(f"--seeds {text}: seed {first} is given twice; each seed is one image (seed{first:04d}.png)")
    return seeds


def seeds_option(text: str) -> list[int]:
    """parse_seeds as an argparse type: its message reaches the user instead of 'invalid value'."""
    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--seeds: ")) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--network", type=Path, help="LeakGuard checkpoint (.pt) or official StyleGAN2-ADA pickle (.pkl)")
    src.add_argument("--random-init", action="store_true", help="an untrained generator (smoke tests, demos)")
    p.add_argument("--seeds", type=seeds_option, default=parse_seeds("0-7"), help="e.g. 0-15 or 1,5,9 (default 0-7)")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="truncation psi (1 = none)")
    p.add_argument("--trunc-cutoff", type=int, default=None, help="truncate only the first N ws (default: all)")
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    p.add_argument("--class", dest="class_idx", type=int, default=None, help="class index for conditional networks")
    p.add_argument("--which", choices=["G_ema", "G"], default="G_ema", help="which generator in the file")
    p.add_argument("--outdir", type=Path, required=True)
    p.add_argument("--grid", action="store_true", help="also write grid.png with all seeds")
    p.add_argument("--force", action="store_true", help="replace images that exist in --outdir")
    p.add_argument("--batch", type=int, default=8, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--resolution", type=int, default=32, help="with --random-init: image size")
    p.add_argument("--init-seed", type=int, default=0, help="with --random-init: seed of the weights")


def random_generator(resolution: int, init_seed: int) -> Generator:
    torch.manual_seed(init_seed)
    return Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=resolution, img_channels=3,
                     mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=4096, channel_max=128))


def run(args) -> None:
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    check_output_folder(args.outdir, "--outdir")
    check_new_files([args.outdir / f"seed{seed:04d}.png" for seed in args.seeds]
                    + ([args.outdir / "grid.png"] if args.grid else []), "--outdir", args.force)
    device = resolve_device(args.device)
    G = random_generator(args.resolution, args.init_seed) if args.random_init else load_generator(args.network,
                                                                                                  args.which)
    class_idx = args.class_idx
    if G.c_dim == 0 and class_idx is not None:
        print("leakguard generate: --class ignored: the network is unconditional")
        class_idx = None
    images = generate(G, args.seeds, device, args.trunc, args.trunc_cutoff, args.noise_mode, class_idx, args.batch)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for seed, img in zip(args.seeds, images):
        save_png(img, args.outdir / f"seed{seed:04d}.png")
    if args.grid:
        save_png(make_grid(images), args.outdir / "grid.png")
    print(f"wrote {len(images)} images ({G.img_resolution}x{G.img_resolution}, {device.type}) to {args.outdir}")
