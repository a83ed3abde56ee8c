"""The release filter: keep only generated faces that match no training identity under any of the
filtering matchers, at a stated FMR, and say how much was removed.

    gates = [build_gate(m, training, store, fmr=1e-3, calibration=cal) for m, cal in ...]   # gates.py
    run_filter(source, gates, checks, FilterSettings(fmr=1e-3, count=1000), Path("out/"))    # run.py
    summary = summarize(out, settings, provenance, check_provenance)                         # summary.py
    would_drop(images, gates)          # the same rule on an image batch: which faces it would drop
    union_drop(best, thresholds)       # ... and on best scores already computed (the evaluation)

`leakguard filter` (leakguard.cli.filter, training.cli.filter) is the command.
"""
import numpy as np
import torch

from leakguard.audit.metrics import rate, union_drop
from leakguard.filter.gates import Gate, build_gate

__all__ = ["Gate", "build_gate", "would_drop", "drop_rate", "union_drop"]


def would_drop(images: torch.Tensor, gates: list[Gate]) -> np.ndarray:
    """bool [n]: which of uint8 [n, 3, H, W] faces the filter drops (a score >= threshold under any gate)."""
    drop = np.zeros(len(images), bool)
    for g in gates:
        drop |= g.search(g.embed(images)).best >= g.threshold
    return drop


def drop_rate(images, gates: list[Gate], batch: int = 256) -> dict:
    """'Images you would have to drop' of an image set (ImageTensor or ImageFiles): count, rate and
    its 95% Wilson interval, as the sweep and the evaluation report it."""
    return rate(sum(int(would_drop(b, gates).sum()) for b in images.batches(batch)), len(images))
