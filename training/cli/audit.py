"""Audit a generator for identity leakage and identity membership, per face matcher.

The generated faces come from a generator (a LeakGuard checkpoint or an official StyleGAN2-ADA
pickle, sampled by seeds as `leakguard generate` does) or from a folder/zip of images. They are
compared with the training set (a dataset zip or folder whose dataset.json gives identities) under
each --matcher; with --members (held-out images of training people) and --nonmembers (people never
in training) the identity-membership attack is scored too. Writes OUT/report.json and
OUT/report.html. Real training images appear in the report only with --show-training-images.

examples:
  leakguard audit --generator runs/synthfaces32-0/checkpoints/snapshot-0000030000.pt --seeds 0-999 \\
      --training faces.zip --members held_out.zip --nonmembers others.zip --matcher synth=synth.pt --out audit/
  leakguard audit --generated fakes/ --training ffhq256.zip --matcher arcface_torch=backbone.pth \\
      --matcher dlib --out audit/ --device cuda
"""
import argparse
from pathlib import Path

import torch

from leakguard.audit.images import ImageTensor
from leakguard.cli import audit as image_audit
from leakguard.cli.options import finite_float
from training.cli.generate import parse_seeds, seeds_option
from training.inference import generate, load_generator


def add_generator_arguments(p: argparse.ArgumentParser):
    """--generator (with --seeds and --trunc) in a required either-or group, returned for --generated to join."""
    sources = p.add_mutually_exclusive_group(required=True)
    sources.add_argument("--generator", type=Path, help="LeakGuard checkpoint (.pt) or official StyleGAN2-ADA pickle")
    p.add_argument("--seeds", type=seeds_option, default=parse_seeds("0-999"), help="with --generator (default 0-999)")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="with --generator: truncation psi (default 1, none)")
    return sources


def add_arguments(p: argparse.ArgumentParser) -> None:
    image_audit.add_arguments(p, add_generator_arguments(p))


def sampled_images(args, device) -> tuple[ImageTensor, dict]:
    """G_ema of --generator rendered at --seeds: the generated image set and how it was made."""
    pixels = generate(load_generator(args.generator, "G_ema"), args.seeds, device, trunc=args.trunc,
                      batch=args.batch)                                                   # [N, H, W, C] uint8
    if pixels.shape[3] != 3:
        raise ValueError(f"{args.generator}: the generator makes {pixels.shape[3]}-channel images; matchers need RGB")
    info = {"generator": str(args.generator), "seeds": f"{args.seeds[0]}-{args.seeds[-1]} ({len(args.seeds)})",
            "truncation_psi": args.trunc}
    labels = [f"seed{s:04d}" for s in args.seeds]  # the file names `leakguard generate` gives them
    return ImageTensor(torch.from_numpy(pixels).permute(0, 3, 1, 2), name=str(args.generator), labels=labels), info


def run(args) -> None:
    image_audit.run(args, None if args.generator is None else lambda device: sampled_images(args, device))
