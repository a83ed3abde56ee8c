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

from leakguard.filter.gates import Gate, build_gate
from leakguard.filter.summary import wilson_interval

__all__ = ["Gate", "build_gate", "would_drop", "drop_rate", "union_drop"]


def union_drop(best: dict, thresholds: dict) -> dict:
    """The filter's rule on scores already computed: best {matcher: [n] best scores over the training
    identities}, thresholds {matcher: tau}; a face is dropped when it reaches tau under any matcher.
    Returns the count, the rate and its 95% Wilson interval (the evaluation's "would drop")."""
    names = list(best)
    if not names:
        raise ValueError("union_drop: no matcher")
    n = len(best[names[0]])
    drop = np.zeros(n, bool)
    for name in names:
        drop |= np.asarray(best[name]) >= thresholds[name]
    k = int(drop.sum())
    return {"count": k, "of": n, "rate": k / n if n else None, "rate_ci": wilson_interval(k, n)}


def would_drop(images: torch.Tensor, gates: list[Gate]) -> np.ndarray:
    """bool [n]: which of uint8 [n, 3, H, W] faces the filter drops (a score >= threshold under any gate)."""
    drop = np.zeros(len(images), bool)
    for g in gates:
        drop |= g.search(g.embed(images)).best >= g.threshold
    return drop


def drop_rate(images, gates: list[Gate], batch: int = 256) -> dict:
    """'Images you would have to drop' of an image set (ImageTensor or ImageFiles): count, rate and
    its 95% Wilson interval, as the sweep and the evaluation report it."""
    dropped = sum(int(would_drop(b, gates).sum()) for b in images.batches(batch))
    n = len(images)
    return {"count": dropped, "of": n, "rate": dropped / n if n else None, "rate_ci": wilson_interval(dropped, n)}
