"""The one logger: `report(name, value)` collects means between ticks; `flush(nimg)` writes them to
TensorBoard and stats.jsonl with the step counted in images seen; `write(nimg, values)` writes numbers
other packages computed (e.g. leakguard.audit.scalars of an audit) the same way. Only rank 0 writes;
elsewhere the reporter is disabled and every call is a no-op. Its files open at the first write, so a
run whose start is refused (a bad snapshot, a missing file) leaves its folder as it was.
"""
import json
from pathlib import Path

import numpy as np
import torch

from leakguard import run_files
from leakguard.atomic import finite_or_null


class Reporter:
    def __init__(self, run_dir: Path | None):
        self.enabled = run_dir is not None
        self.run_dir = run_dir
        self._sums: dict[str, list] = {}  # name -> [sum tensor or float, count]
        self._writer = None
        self._stats = None

    def _open(self) -> None:
        if self._writer is None:
            # Here, not at import: TensorBoard costs seconds to import, and only rank 0 of a run needs it.
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(log_dir=str(self.run_dir))
            self._stats = open(Path(self.run_dir) / run_files.STATS, "a")

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
        return self.write(nimg, means)

    def write(self, nimg: int, values: dict[str, float]) -> dict:
        """Writes `values` at step `nimg` now: TensorBoard scalars and one stats.jsonl line, where a
        NaN or infinite value is null (stats.jsonl is strict JSON)."""
        if not self.enabled:
            return {}
        self._open()
        for k, v in values.items():
            self._writer.add_scalar(k, v, global_step=nimg)
        line = finite_or_null({"nimg": nimg, **{k: float(v) for k, v in values.items()}})
        self._stats.write(json.dumps(line, allow_nan=False) + "\n")
        self._stats.flush()
        self._writer.flush()
        return values

    def image(self, name: str, array: np.ndarray, nimg: int) -> None:
        """One [H, W, C] uint8 image."""
        if self.enabled:
            self._open()
            self._writer.add_image(name, array, global_step=nimg, dataformats="HWC")
            self._writer.flush()

    def close(self) -> None:
        if self.enabled and self._writer is not None:
            self._writer.close()
            self._stats.close()
        self.enabled = False
