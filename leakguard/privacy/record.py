"""Reading the privacy record a LeakGuard checkpoint carries: release.pt's (extra.privacy) or a training
snapshot's (privacy.record). The record itself is written by training (training.dp); this reader is
what `leakguard privacy show`, `leakguard report` and a sweep's results use, without importing training."""
import os
from pathlib import Path

from leakguard.torch_files import FORMATS, read_checkpoint


def read_privacy_record(path: str | os.PathLike) -> dict | None:
    """The privacy record of a LeakGuard checkpoint (release.pt) or training snapshot; None if it has none."""
    data = read_checkpoint(Path(path), FORMATS, "a LeakGuard checkpoint")
    if isinstance(data.get("privacy"), dict):
        return data["privacy"]["record"]
    return (data.get("extra") or {}).get("privacy")
