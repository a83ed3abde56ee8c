"""LeakGuard's torch files read safely: their format names, one weights-only reader, and why torch refused
a file, in words a user can act on.

torch's own message advises re-running with weights_only=False: for a file that asks for
`posix.system`, that advice runs the attacker's code. LeakGuard never passes it on; it names the
global the file asked for, or torch's first sentence otherwise.
"""
import hashlib
import os
import re
from pathlib import Path

import torch

NETWORKS_FORMAT = "leakguard.networks/1"  # networks as records, plus plain `extra` (training.checkpoint, release.pt)
SNAPSHOT_FORMAT = "leakguard.train/1"     # a whole training state, for exact resume (training.snapshot)
FORMATS = (NETWORKS_FORMAT, SNAPSHOT_FORMAT)

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (model versions, train.init's record)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, named in the message."""


def load_failure(e: BaseException) -> str:
    """A one-line reason for a failed weights-only torch.load, without any advice to load unsafely."""
    text = str(e)
    found = _GLOBAL.search(text)
    if "weights_only" in text and found:
        return (f"it asks for the Python object {found.group(1)}, which a weights-only load refuses (loading it "
                f"could run code; nothing was run)")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
    first = re.split(r"(?<=\.)\s", first)[0]  # the first sentence
    if "weights_only" in first and "False" in first:
        first = "not a file a weights-only load can read"
    return f"{type(e).__name__}: {first[:200]}"


def read_checkpoint(path: str | os.PathLike, formats: tuple[str, ...], what: str, missing: str = "checkpoint not found",
                    hint: str = "", hints: dict[str, str] | None = None, map_location="cpu") -> dict:
    """The data of a torch.save file whose "format" is one of `formats`, loaded weights-only (opening it
    never runs code). Each failure is one line naming the file: FileNotFoundError ("{missing}: path"),
    or CheckpointError saying that it is not `what` (torch's reason), or naming the format it has, followed
    by hints[that format] when there is one, else by `hint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{missing}: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for files that are not checkpoints
        raise CheckpointError(f"{path}: not {what} ({load_failure(e)})") from None
    found = data.get("format") if isinstance(data, dict) else type(data).__name__
    if found not in formats:
        expected = " or ".join(repr(f) for f in formats)
        raise CheckpointError(f"{path}: format {found!r} is not {expected}{(hints or {}).get(found, hint)}")
    return data
