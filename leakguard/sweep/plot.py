"""One Pareto plot of a sweep: each group's mean on a privacy axis against its mean FD, drawn on a
matplotlib Figure (Agg, no pyplot, no window) and returned as PNG bytes for report.html.

Intervals are error bars where the group has them; the non-dominated groups are red and joined by the
front's staircase. A group with an infinite privacy value (trained without DP: epsilon = inf) is drawn
at the right edge, inside a grey band labelled as such, so it stays visible and reads as the worst.
A group whose fakes are mostly not faces (pareto.not_faces) is a hollow grey circle, in the legend as
"not faces", and never on the front: its low leak rate is no privacy.
"""
import math
from typing import Sequence

import numpy as np

from leakguard.audit.faces import MIN_FACE_SHARE
from leakguard.html import figure_png, mpl_literal, new_figure
from leakguard.sweep.pareto import EPSILON, axis_label, not_faces

NO_DP = "no DP (ε = ∞)"
NOT_FACES = f"not faces (< {MIN_FACE_SHARE:.0%} of fakes in the real manifold): on no front"


def _band(x: np.ndarray) -> tuple[float, float, float]:
    """(where an infinite value is drawn, the band's left end, its right end): right of every finite x."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return 1.0, 0.0, 2.0
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return hi + 0.3 * span, hi + 0.15 * span, hi + 0.45 * span


def _infinite_ticks(ax, at: float, left: float, right: float, any_finite: bool) -> None:
    """No finite tick inside the band (its position is no value); one tick '∞' where its points are."""
    low = ax.get_xlim()[0] if any_finite else left
    ticks = [float(t) for t in ax.get_xticks() if low <= t < left]
    ax.set_xticks(ticks + [at], [f"{t:g}" for t in ticks] + ["∞"])
    ax.set_xlim(low, right)


def _err(interval, at: float):
    """[[below], [above]] for errorbar, or None without a finite interval."""
    if interval is None or not all(math.isfinite(v) for v in (*interval, at)):
        return None
    return [[max(at - interval[0], 0.0)], [max(interval[1] - at, 0.0)]]


def _error_bars(ax, group: dict, axis: str, fid: str, at: tuple[float, float], finite_x: bool) -> None:
    xerr = _err(group["intervals"].get(axis), at[0]) if finite_x else None
    yerr = _err(group["intervals"].get(fid), at[1])
    if xerr or yerr:
        ax.errorbar([at[0]], [at[1]], xerr=xerr, yerr=yerr, fmt="none", ecolor="0.55", elinewidth=1,
                    capsize=2, zorder=1)


def _points(ax, names: list[str], pos: np.ndarray, y: np.ndarray, front: np.ndarray, off: np.ndarray,
            off_label: str = NOT_FACES) -> None:
    """The groups as points, the front's in red, joined as the staircase of what is attainable; the groups
    that are not faces (off [G] bool) hollow and grey."""
    dominated = ~front & ~off
    ax.scatter(pos[dominated], y[dominated], color="tab:blue", s=30, label="dominated", zorder=3)
    ax.scatter(pos[front], y[front], color="tab:red", s=60, label="non-dominated", zorder=4)
    if off.any():
        ax.scatter(pos[off], y[off], facecolors="none", edgecolors="0.45", linewidths=1.4, s=50,
                   label=mpl_literal(off_label), zorder=3)
    order = np.lexsort((y[front], pos[front]))
    ax.step(pos[front][order], y[front][order], where="post", color="tab:red", lw=1.2, zorder=2)
    for name, px, py in zip(names, pos, y):
        ax.annotate(mpl_literal(name), (px, py), xytext=(4, 4), textcoords="offset points", fontsize=7)


def pareto_plot(groups: Sequence[dict], axis: str, fid: str, front: np.ndarray, null: tuple | None = None,
                null_label: str = "null", not_faces_label: str = NOT_FACES) -> bytes:
    """PNG of `axis` against the fidelity column `fid` for the groups; front: [G] bool (pareto.fronts); `null`:
    (value, [low, high]) on the privacy axis of a generator that leaks nothing, drawn as a dashed line in its band;
    `not_faces_label`: the legend of the groups marked not_faces (by the rule their caller applied)."""
    x = np.array([g["means"].get(axis, math.nan) for g in groups], np.float64)  # [G]
    y = np.array([g["means"].get(fid, math.nan) for g in groups], np.float64)   # [G]
    shown = ~(np.isnan(x) | np.isnan(y))
    fig, (ax,) = new_figure(8, 5)
    pos = x.copy()  # [G] where each group is drawn
    band = _band(x[shown]) if np.isposinf(x[shown]).any() else None
    if band:
        pos[np.isposinf(x)] = band[0]
        ax.axvspan(band[1], band[2], color="0.9", zorder=0)
        ax.text((band[1] + band[2]) / 2, 0.98, NO_DP if axis == EPSILON else "infinite", ha="center", va="top",
                fontsize=8, transform=ax.get_xaxis_transform())
    for i in np.flatnonzero(shown):
        _error_bars(ax, groups[i], axis, fid, (pos[i], y[i]), bool(np.isfinite(x[i])))
    _points(ax, [g["group"] for g, s in zip(groups, shown) if s], pos[shown], y[shown],
            np.asarray(front, bool)[shown], not_faces(groups)[shown], not_faces_label)
    if axis.startswith(("auc@", "auc_overrep@")):
        ax.axvline(0.5, color="0.5", ls=":", lw=1)  # a chance-level membership attack
    if null is not None:
        ax.axvspan(null[1][0], null[1][1], color="tab:green", alpha=0.12, zorder=0)
        ax.axvline(null[0], color="tab:green", ls="--", lw=1, label=mpl_literal(null_label))
    ax.set_xlabel(mpl_literal(axis_label(axis)), fontsize=9)
    ax.set_ylabel(mpl_literal(axis_label(fid)), fontsize=9)
    drawn, missing = int(shown.sum()), int((~shown).sum())
    ax.set_title(f"{drawn} group{'s' * (drawn != 1)}" + (f" ({missing} without this number, not drawn)"
                                                         if missing else ""), fontsize=9)
    if band:
        _infinite_ticks(ax, *band, any_finite=bool(np.isfinite(x[shown]).any()))
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="best")
    return figure_png(fig)
