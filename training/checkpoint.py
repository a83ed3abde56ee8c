"""LeakGuard network checkpoints: state dicts plus the constructor kwargs, nothing else.

A checkpoint is a `torch.save` of plain data — {'format', 'networks': {name: {'class', 'kwargs',
'state_dict'}}, 'extra'} — and is read with `torch.load(weights_only=True)`, so opening one never
runs code. Classes are looked up in an explicit registry (training.records), never imported by a
name from the file. Training snapshots (training.snapshot) hold the same records and open here too.
"""
import os
from pathlib import Path

import torch
from torch import nn

from leakguard.atomic import atomic_open
from leakguard.torch_files import FORMATS, NETWORKS_FORMAT, SNAPSHOT_FORMAT, CheckpointError, read_checkpoint
from training.official import load_official_networks
from training.records import build_network, network_record, plain

FORMAT = NETWORKS_FORMAT

__all__ = ["FORMAT", "CheckpointError", "save_networks", "load_networks", "load_any"]


def save_networks(path: str | os.PathLike, networks: dict[str, nn.Module], extra: dict | None = None) -> None:
    """Saves e.g. {'G': G, 'D': D, 'G_ema': G_ema} with plain-data `extra` (dataset kwargs, notes), atomically."""
    data = {"format": FORMAT, "networks": {k: network_record(m) for k, m in networks.items()},
            "extra": plain(extra or {}, "extra")}
    with atomic_open(path, "wb") as f:
        torch.save(data, f)


def load_networks(path: str | os.PathLike, map_location="cpu") -> dict:
    """Returns {'G': ..., 'D': ..., 'G_ema': ... (those saved), 'extra': {...}} from a LeakGuard
    checkpoint or training snapshot."""
    path = Path(path)
    data = read_checkpoint(path, FORMATS, "a LeakGuard checkpoint", map_location=map_location,
                           hint="; official StyleGAN2 .pkl files are read by `leakguard convert` or passed to "
                                "`leakguard generate` directly")
    out = {name: build_network(rec, f"{path}: network {name!r}") for name, rec in data["networks"].items()}
    out["extra"] = data.get("extra", {})
    if data["format"] == SNAPSHOT_FORMAT:
        out["extra"] = {**out["extra"], "config": data["config"], "nimg": data["nimg"]}
    return out


def load_any(path: str | os.PathLike) -> dict:
    """Opens a LeakGuard checkpoint (.pt, a zip) or an official StyleGAN2-ADA pickle, told apart by
    content rather than by extension. Both return {'G', 'D', 'G_ema' (those present), 'extra'}."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a network file (a LeakGuard checkpoint .pt, e.g. "
                                f"release.pt or checkpoints/snapshot-*.pt, or an official StyleGAN2-ADA .pkl)")
    if not path.is_file():
        raise FileNotFoundError(f"network file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"PK":
        return load_networks(path)
    if head[:1] == b"\x80":  # pickle protocol 2+
        return load_official_networks(path)
    raise CheckpointError(f"{path}: neither a LeakGuard checkpoint (.pt) nor an official StyleGAN2-ADA pickle (.pkl)")
