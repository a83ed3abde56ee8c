"""The one logger: `report(name, value)` collects means between ticks; `flush(nimg)` writes them to
TensorBoard and stats.jsonl with the step counted in images seen. Only rank 0 writes; elsewhere
the reporter is disabled and every call is a no-op.
"""
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter


class Reporter:
    def __init__(self, run_dir: Path | None):
        self.enabled = run_dir is not None
        self._sums: dict[str, list] = {}  # name -> [sum tensor or float, count]
        self._writer = None
        self._stats = None
        if self.enabled:
            self._writer = SummaryWriter(log_dir=str(run_dir))
            self._stats = open(Path(run_dir) / "stats.jsonl", "a")

    def report(self, name: str, value) -> None:
        """Adds a scalar or every element of a tensor to the running mean of `name`. Tensors stay on
        their device until flush, so reporting never waits for the GPU."""
        if not self.enabled:
            return
        if isinstance(value, torch.Tensor):
            value = value.detach().float()
            total, count = value.sum(), value.numel()
        else:
            total, count = float(value), 1
        entry = self._sums.setdefault(name, [0.0, 0])
        entry[0] = entry[0] + total
        entry[1] += count

    def flush(self, nimg: int, extra: dict | None = None) -> dict:
        """Writes the means since the last flush (and `extra` scalars); returns them."""
        if not self.enabled:
            return {}
        means = {k: float(s) / max(c, 1) for k, (s, c) in self._sums.items()}
        means.update(extra or {})
        self._sums.clear()
        for k, v in means.items():
            self._writer.add_scalar(k, v, global_step=nimg)
        self._stats.write(json.dumps({"nimg": nimg, **means}) + "\n")
        self._stats.flush()
        self._writer.flush()
        return means

    def image(self, name: str, array: np.ndarray, nimg: int) -> None:
        """One [H, W, C] uint8 image."""
        if self.enabled:
            self._writer.add_image(name, array, global_step=nimg, dataformats="HWC")
            self._writer.flush()

    def close(self) -> None:
        if self.enabled:
            self._writer.close()
            self._stats.close()
            self.enabled = False
