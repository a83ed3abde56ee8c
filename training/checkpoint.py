"""LeakGuard network checkpoints: state dicts plus the constructor kwargs, nothing else.

A checkpoint is a `torch.save` of plain data — {'format', 'networks': {name: {'class', 'kwargs',
'state_dict'}}, 'extra'} — and is read with `torch.load(weights_only=True)`, so opening one never
runs code. Classes are looked up in an explicit registry, never imported by a name from the file.
"""
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from training.networks import Discriminator, Generator
from training.publish import publish

FORMAT = "leakguard.networks/1"
TRAIN_FORMAT = "leakguard.train/1"  # training snapshots (training.snapshot) hold the same network records
NETWORK_CLASSES: dict[str, type[nn.Module]] = {"Generator": Generator, "Discriminator": Discriminator}
_PLAIN = (str, int, float, bool, type(None))


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, named in the message."""


def plain(value, where: str = "kwargs"):
    """Deep-copies kwargs into dicts, lists and scalars (what weights_only loading accepts)."""
    if isinstance(value, dict):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, _PLAIN):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return value.item()
    raise CheckpointError(f"{where}: {type(value).__name__} values cannot be stored in a checkpoint")


def network_record(module: nn.Module) -> dict:
    name = type(module).__name__
    if NETWORK_CLASSES.get(name) is not type(module):
        raise CheckpointError(f"cannot checkpoint a {name}; known networks: {', '.join(NETWORK_CLASSES)}")
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {"class": name, "kwargs": plain(module.init_kwargs), "state_dict": state}


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """Writes to a temporary file beside `path` and renames it, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_networks(path: str | os.PathLike, networks: dict[str, nn.Module], extra: dict | None = None) -> None:
    """Saves e.g. {'G': G, 'D': D, 'G_ema': G_ema} with plain-data `extra` (dataset kwargs, notes)."""
    atomic_torch_save({"format": FORMAT, "networks": {k: network_record(m) for k, m in networks.items()},
                       "extra": plain(extra or {}, "extra")}, path)


def build_network(record: dict, where: str) -> nn.Module:
    """Rebuilds a module from {'class', 'kwargs', 'state_dict'}; `where` names it in errors."""
    cls = NETWORK_CLASSES.get(record.get("class"))
    if cls is None:
        raise CheckpointError(f"{where}: unknown network class {record.get('class')!r}; "
                              f"known: {', '.join(NETWORK_CLASSES)}")
    try:
        module = cls(**record["kwargs"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: cannot build {cls.__name__} from kwargs {record['kwargs']}: {e}") from e
    load_state_dict_exact(module, record["state_dict"], where)
    return module.eval()


def load_state_dict_exact(module: nn.Module, state: dict, where: str) -> None:
    ours = module.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong = sorted(k for k in set(ours) & set(state) if tuple(ours[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:8]}" if missing else "", f"unexpected {unexpected[:8]}" if unexpected else "",
                 "shape mismatch " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}"
                                               for k in wrong[:8]) if wrong else ""]
        raise CheckpointError(f"{where}: tensors do not fit {type(module).__name__}: "
                              + "; ".join(p for p in parts if p))
    module.load_state_dict(state, strict=True)


def load_networks(path: str | os.PathLike, map_location="cpu") -> dict:
    """Returns {'G': ..., 'D': ..., 'G_ema': ... (those saved), 'extra': {...}} from a LeakGuard checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for non-checkpoint files
        raise CheckpointError(f"{path}: not a LeakGuard checkpoint readable with weights_only=True ({e})") from e
    if not isinstance(data, dict) or data.get("format") not in (FORMAT, TRAIN_FORMAT):
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path}: format {found!r} is not {FORMAT!r}; official StyleGAN2 .pkl files are "
                              f"read by `leakguard convert` or passed to `leakguard generate` directly")
    out = {name: build_network(rec, f"{path}: network {name!r}") for name, rec in data["networks"].items()}
    out["extra"] = data.get("extra", {})
    if data["format"] == TRAIN_FORMAT:
        out["extra"] = {**out["extra"], "config": data["config"], "nimg": data["nimg"]}
    return out


def load_any(path: str | os.PathLike) -> dict:
    """Opens a LeakGuard checkpoint (.pt, a zip) or an official StyleGAN2-ADA pickle, told apart by
    content rather than by extension. Both return {'G', 'D', 'G_ema' (those present), 'extra'}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"network file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"PK":
        return load_networks(path)
    if head[:1] == b"\x80":  # pickle protocol 2+
        return load_official_networks(path)
    raise CheckpointError(f"{path}: neither a LeakGuard checkpoint (.pt) nor an official StyleGAN2-ADA pickle (.pkl)")


def load_official_networks(path: str | os.PathLike) -> dict:
    """An official pickle in the shape load_networks returns: networks plus 'extra' holding
    the source path and the pickle's training_set_kwargs."""
    from training.official import load_official_pkl  # official.py imports this module
    nets = load_official_pkl(path)
    nets["extra"] = {"source": str(path), "training_set_kwargs": nets.pop("training_set_kwargs", None)}
    return nets
