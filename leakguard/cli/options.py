"""Command-line options shared by the commands of every package: the torch device and the
NAME[=WEIGHTS] matcher option."""
import argparse

import torch

from leakguard.matchers.published import PUBLISHED
from leakguard.matchers.registry import MATCHERS


def resolve_device(name: str) -> torch.device:
    """'auto' is cuda when there is a GPU, else cpu; a CUDA device without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def parse_matcher(text: str) -> tuple[str, str | None]:
    """'synth=synth.pt' -> ('synth', 'synth.pt'); 'dlib' -> ('dlib', None)."""
    name, _, weights = text.partition("=")
    if name not in MATCHERS:
        raise argparse.ArgumentTypeError(f"unknown matcher {name!r}; valid matchers: {', '.join(MATCHERS)}")
    return name, weights or None


def parse_published(text: str) -> str:
    """'dlib=published' -> 'dlib', for a matcher with a published operating point."""
    name, _, kind = text.partition("=")
    if kind != "published":
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=published (e.g. dlib=published)")
    if name not in PUBLISHED:
        raise argparse.ArgumentTypeError(f"{name!r} has no published operating point LeakGuard knows of; "
                                         f"matchers that have one: {', '.join(PUBLISHED)}")
    return name
