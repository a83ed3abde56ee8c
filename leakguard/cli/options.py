"""Command-line options shared by the commands of every package: the torch device, the
NAME[=WEIGHTS] matcher and NAME=published threshold options, finite numbers, and the checks that
keep existing files (an output over an input, a file where a folder belongs, a file without --force)."""
import argparse
import math
import os
import tempfile
from pathlib import Path

import torch

from leakguard.fidelity.extractors import extractor_names
from leakguard.matchers.published import PUBLISHED
from leakguard.matchers.registry import is_known, unknown_message


def resolve_device(name: str) -> torch.device:
    """'auto' is cuda when there is a GPU, else cpu; a CUDA device without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def parse_matcher(text: str) -> tuple[str, str | None]:
    """'synth=synth.pt' -> ('synth', 'synth.pt'); 'dlib' -> ('dlib', None); 'mine=model.onnx' where
    model.onnx.matcher.yaml describes it -> ('mine', 'model.onnx')."""
    name, _, weights = text.partition("=")
    if not name or not is_known(name, weights or None):
        raise argparse.ArgumentTypeError(unknown_message(name, weights or None))
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


def check_output_file(path, option: str, force: bool, inputs=()) -> None:
    """Refuses to write `path` over one of the command's inputs, over a folder, or over an existing file
    without --force; checked before any work, so a refusal changes nothing on disk."""
    path = Path(path).expanduser()
    for source in inputs:
        if source is not None and path.exists() and Path(source).expanduser().exists() \
                and path.resolve() == Path(source).expanduser().resolve():
            raise ValueError(f"{option} {path}: that is the input file; write the result to another path")
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not force:
        raise FileExistsError(f"{option} {path}: the file exists; pass --force to replace it")


def check_output_folder(path, option: str) -> None:
    """A folder the command writes into: refused when a file stands there."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {path}: is a file, not a folder; give a folder to write into")


def check_writable_folder(path, option: str) -> None:
    """A folder the command writes into must take a new file: it, or the nearest folder above it that exists
    (where it would be made). Checked before any work by writing and removing an empty file, so an --out
    nobody can write to is one line at the start, not a failure after the work; nothing is left behind."""
    path = Path(path).expanduser()
    check_output_folder(path, option)
    try:
        base = path
        while not base.exists():
            base = base.parent
        if not base.is_dir():
            raise NotADirectoryError(f"{option} {path}: {base} is a file, not a folder; give a folder to write into")
        fd, probe = tempfile.mkstemp(prefix=".leakguard-write-check-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except NotADirectoryError:
        raise
    except OSError as e:
        raise PermissionError(f"{option} {path}: cannot write in {base} ({e.strerror or e}); choose a folder you "
                              f"can write to") from None


def check_new_files(paths, option: str, force: bool) -> None:
    """Files a command writes into a folder: refused when one exists already, unless --force."""
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing and not force:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise FileExistsError(f"{option}: {existing[0]}{more} exist(s); pass --force to replace them, or write "
                              f"to another folder")


def finite_float(text: str) -> float:
    """argparse type: a float that is neither NaN nor infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
    return value


def add_subcommands(p: argparse.ArgumentParser, table: dict, dest: str, doc: str | None) -> None:
    """Subcommands from {name: (add_arguments, run)}; each one's help is its run's first doc line."""
    sub = p.add_subparsers(dest=dest, required=True, metavar="SUBCOMMAND")
    for name, (add, run_sub) in table.items():
        first = (run_sub.__doc__ or doc).strip().splitlines()[0]
        add(sub.add_parser(name, help=first, description=first))


def parse_features(text: str) -> tuple[str, str | None]:
    """--features NAME[=PATH] (audit, fidelity): 'inception=inception.pt' -> ('inception', 'inception.pt');
    NAME one of the fidelity extractors."""
    name, _, path = text.partition("=")
    if name not in extractor_names():
        raise argparse.ArgumentTypeError(f"--features {text}: unknown feature extractor {name!r}; valid: "
                                         f"{', '.join(extractor_names())}")
    return name, path or None
