"""Published weight files: read as state dicts with weights_only=True, checked key by key against the
network before loading, and fingerprinted for `Matcher.version`."""
import hashlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from leakguard.matchers.weights import require_file
from leakguard.torch_files import load_failure

_MIB = 1 << 20


class WeightsMismatch(ValueError):
    """A weight file whose keys or shapes are not the network's; the message names the file and keys."""


def open_weights(matcher: str, weights: str | Path | None, allow_random: bool, what: str,
                 source: str) -> tuple[dict[str, torch.Tensor] | None, Path | None]:
    """(state dict, path) of the weights a matcher was given; (None, None) when weights is None and
    random initialisation was asked for (tests only), otherwise the error naming `what` and `source`."""
    if weights is None and allow_random:
        return None, None
    path = require_file(matcher, weights, what, source)
    return read_state_dict(path, matcher), path


def read_state_dict(path: Path, matcher: str) -> dict[str, torch.Tensor]:
    """A plain state dict from a torch file, unwrapped from {'state_dict': ...} and with the 'module.'
    prefix of (Distributed)DataParallel removed. Never executes code from the file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickled code, a truncated download, not a torch file at all
        raise WeightsMismatch(f"matcher {matcher!r}: cannot read {path} as a weights-only torch file: "
                              f"{load_failure(e)}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsMismatch(f"matcher {matcher!r}: {path} is not a state dict (parameter name -> tensor); "
                              f"it holds a {type(obj).__name__}")
    others = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if others:  # e.g. a training checkpoint {'epoch': ..., 'model': ..., 'optimizer': ...}
        raise WeightsMismatch(f"matcher {matcher!r}: {path} is not a state dict (parameter name -> tensor): "
                              f"{others[0]!r} holds a {type(obj[others[0]]).__name__}; its top-level keys are "
                              f"{', '.join(map(str, list(obj)[:8]))}{', ...' if len(obj) > 8 else ''}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def build(make: Callable[[], nn.Module], state: dict[str, torch.Tensor] | None, path: Path | None,
          matcher: str, hint: str = "", show: int = 5) -> nn.Module:
    """make() loaded with `state` (strict=True), or make() as initialised when state is None. The keys
    and shapes are checked first on a weightless copy, so a wrong file fails fast and the error lists
    (up to `show` of each) the missing keys, unexpected keys and shape mismatches, naming the file."""
    if state is None:
        return make()
    with torch.device("meta"):
        expected = make().state_dict()
    # BatchNorm's step counter is absent from files written before torch 0.4.1; torch fills it in.
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (network: {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label} ({len(keys)}): {', '.join(keys[:show])}{', ...' if len(keys) > show else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise WeightsMismatch(f"matcher {matcher!r}: {path} does not fit the network; " + "; ".join(parts)
                              + (f". {hint}" if hint else ""))
    net = make()
    net.load_state_dict(dict(state), strict=True)
    return net


def fingerprint(path: Path | None) -> str:
    """12 hex digits of sha256 over the file's size, first MiB and last MiB ('random' for no file).
    Cheap for 250 MB files; two weight files of one size that differ only in their middle would
    collide, which training never produces (every tensor changes)."""
    if path is None:
        return "random"
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_MIB))
        if size > 2 * _MIB:
            f.seek(size - _MIB)
        h.update(f.read(_MIB))
    return h.hexdigest()[:12]
