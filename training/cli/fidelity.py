"""Fidelity of a generator (or a folder of its images) against its training set: FD, KID and
precision/recall per feature extractor, written to OUT/fidelity.json. `inception` gives the FID
papers report (its weights file, inception-2015-12-05.pt, is never downloaded: pass its path); a
matcher's features give an identity-space FD, fd_<matcher>.

examples:
  leakguard fidelity --generator runs/synthfaces32-0/checkpoints/snapshot-0000030000.pt --seeds 0-999 \\
      --training faces.zip --features synth=synth.pt --out fidelity/
  leakguard fidelity --generated fakes/ --training ffhq256.zip --features inception=inception-2015-12-05.pt \\
      --features arcface_torch=backbone.pth --out fidelity/ --device cuda
"""
import argparse

from leakguard.cli import fidelity as image_fidelity
from training.cli.audit import add_generator_arguments, sampled_images


def add_arguments(p: argparse.ArgumentParser) -> None:
    image_fidelity.add_arguments(p, add_generator_arguments(p))


def run(args) -> None:
    image_fidelity.run(args, None if args.generator is None else lambda device: sampled_images(args, device))
