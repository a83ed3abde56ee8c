"""Command-line checks the bench scripts share: a refused value is one argparse error (exit 2) naming it."""
import argparse
from pathlib import Path

import torch


def device(ap: argparse.ArgumentParser, text: str) -> torch.device:
    """--device TEXT as a torch.device that is here, or ap.error saying why not."""
    try:
        found = torch.device(text)
    except RuntimeError:
        ap.error(f"--device {text!r}: not a device name (cpu, cuda, cuda:1, ...)")
    if found.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {text}: no CUDA device is visible to torch {torch.__version__}; use --device cpu")
    if found.type not in ("cpu", "cuda"):
        ap.error(f"--device {text}: the bench scripts time cpu and cuda only")
    return found


def folder(ap: argparse.ArgumentParser, option: str, text: str) -> Path:
    """A folder the script may create or fill, or ap.error when the path is an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        ap.error(f"{option} {text}: is a file; give a folder")
    return path
