"""The privacy-versus-fidelity Pareto front of a sweep's groups, one per privacy axis.

Lower is better on both axes. Privacy axes: epsilon (a non-private group's is infinite, the worst),
each leak rate `leak@<matcher>@<fmr>` and each membership AUC `auc@<matcher>` (lower is better there
too; 0.5 is a chance-level attack). Fidelity axis: the first FD column `fd@<key>` (metric_order).

A group whose fakes are mostly not faces (group["not_faces"]: its first extractor's share of faces is
below leakguard.audit.faces.MIN_FACE_SHARE) is on no front and dominates no group: a noise generator
leaks nothing and protects no one, so its low leak rate must not push a generator of faces off a front.
"""
from typing import Sequence

import numpy as np

from leakguard.sweep.results import metric_order

EPSILON = "epsilon"


def pareto_front(privacy: Sequence[float], fidelity: Sequence[float]) -> np.ndarray:
    """[N] bool: the points no other point dominates (<= on both axes and < on one); lower is better.
    Infinities compare as numbers; a point with a NaN is never on the front and dominates nothing;
    equal points do not dominate each other. O(N log N): one sort, then running minima."""
    x = np.asarray(privacy, np.float64)   # [N]
    y = np.asarray(fidelity, np.float64)  # [N]
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"pareto_front: privacy {list(x.shape)} and fidelity {list(y.shape)} must be two "
                         "sequences of the same length")
    front = np.zeros(len(x), bool)
    valid = np.flatnonzero(~(np.isnan(x) | np.isnan(y)))
    if len(valid) == 0:
        return front
    order = valid[np.lexsort((y[valid], x[valid]))]  # by x, then y
    xs, ys = x[order], y[order]
    is_start = np.r_[True, xs[1:] != xs[:-1]]  # [M] the first point of each run of equal x
    run = np.cumsum(is_start) - 1              # [M] the run each sorted point is in
    run_min = ys[is_start]                     # [R] sorted by y within a run: its first is its least
    # the least y over all runs of strictly smaller x; a run with none before it has no such point
    before = np.r_[np.inf, np.minimum.accumulate(run_min)[:-1]]
    dominated = (ys > run_min[run]) | ((run > 0) & (ys >= before[run]))
    front[order] = ~dominated
    return front


def privacy_axes(columns) -> list[str]:
    """epsilon, then the leak-rate and AUC columns among `columns`, in metric_order."""
    ordered = metric_order(c for c in columns if c.startswith(("leak@", "auc@", "auc_overrep@")))
    return [EPSILON] + ordered


def fidelity_axis(columns) -> str | None:
    return next((c for c in metric_order(columns) if c.startswith("fd@")), None)


def axis_label(column: str) -> str:
    kind, _, rest = column.partition("@")
    where, _, fmr = rest.partition("@")
    if column == EPSILON:
        return "epsilon at delta (lower is more private; no DP = inf)"
    if kind == "leak":
        return f"leak rate, {where} at FMR {fmr} (lower is better)"
    if kind == "auc":
        return f"membership AUC, {where} (lower is better; 0.5 is chance)"
    if kind == "auc_overrep":
        return f"membership AUC of the over-represented people, {where} (lower is better; 0.5 is chance)"
    if kind == "fd":
        return f"FD, {where} (lower is better)"
    return column


def short_name(column: str) -> str:
    """'ε', 'leak synth@0.001', 'AUC synth': the axis as the table's front column names it."""
    kind, _, rest = column.partition("@")
    return {"epsilon": "ε", "leak": f"leak {rest}", "auc": f"AUC {rest}",
            "auc_overrep": f"AUC over-rep. {rest}"}.get(kind, column)


def group_columns(groups: Sequence[dict]) -> list[str]:
    return metric_order(c for g in groups for c in g["means"] if "@" in c)


def not_faces(groups: Sequence[dict]) -> np.ndarray:
    """[G] bool: the groups whose fakes are mostly not faces (None, unknown, counts as faces)."""
    return np.array([bool(g.get("not_faces")) for g in groups], bool)


def fronts(groups: Sequence[dict]) -> dict[str, np.ndarray]:
    """{privacy axis: [G] bool, the groups on its front against the fidelity axis}; {} without an FD.
    Groups that are not faces are left out (as NaN: on no front, dominating none)."""
    columns = group_columns(groups)
    fid = fidelity_axis(columns)
    if fid is None:
        return {}
    off = not_faces(groups)
    y = [np.nan if o else g["means"].get(fid, np.nan) for g, o in zip(groups, off)]
    return {axis: pareto_front([g["means"].get(axis, np.nan) for g in groups], y) for axis in privacy_axes(columns)}
