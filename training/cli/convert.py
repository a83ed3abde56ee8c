"""Convert an official StyleGAN2-ADA pickle to a LeakGuard checkpoint.

The pickle is read without running any code from it (training.official); the result holds only
state dicts and constructor kwargs and loads with torch.load(weights_only=True).

example:
  leakguard convert stylegan2-ffhq-config-f.pkl ffhq.pt
"""
import argparse
from pathlib import Path

from leakguard.cli.options import check_output_file
from training.checkpoint import save_networks
from training.official import load_official_networks


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, help="official .pkl (StyleGAN2-ADA PyTorch or the StyleGAN3 repository)")
    p.add_argument("dst", type=Path, help="output .pt (an existing file is kept unless --force)")
    p.add_argument("--force", action="store_true", help="replace DST if it exists")


def run(args) -> None:
    if not args.src.is_file():
        raise FileNotFoundError(f"no such file: {args.src}")
    check_output_file(args.dst, "dst", args.force, inputs=[args.src])
    nets = load_official_networks(args.src)
    extra = nets.pop("extra")
    save_networks(args.dst, nets, extra)
    summary = ", ".join(f"{k} ({sum(p.numel() for p in m.parameters()):,} params)" for k, m in nets.items())
    print(f"wrote {args.dst}: {summary}")
