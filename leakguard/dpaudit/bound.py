"""The one-run privacy audit of Steinke, Nasr & Jagielski (NeurIPS 2023, "Privacy Auditing with One (1)
Training Run"): an empirical lower bound on epsilon from m canaries, each put in the training set
independently with probability 1/2, and a score per canary (higher: more likely in).

    result = audit_bound(scores, included, delta=1e-5)      # scores [m], included bool [m]
    result["epsilon_lower_bound"]                            # at 95% confidence, the choice of guesses paid for

The auditor guesses "in" for the k+ highest scores and "out" for the k- lowest (r = k+ + k- guesses,
abstaining on the rest) and counts the correct ones, v. Under (epsilon, 0)-DP, v is stochastically
dominated by Binomial(r, e^eps / (1 + e^eps)) (their Theorem 3.1); under (epsilon, delta)-DP the tail
gains the paper's delta term: P[v' >= v] <= P[Binomial(r, q) >= v] + 2 m delta alpha, with
alpha = max over 1 <= i <= v of P[v - i <= Binomial(r, q) < v] / i (their approximate-DP bound, in the
form of the paper's p-value procedure; the tests check it against a second computation from binomial
survival functions, the form of DeepMind's jax_privacy.auditing). An epsilon whose p-value is at most
1 - confidence is rejected; the bound is the largest epsilon rejected (0 when none is).

Choosing the guesses: (k+, k-) are taken from a fixed grid (GRID, both sides alike and one-sided), as
the paper chooses them by trying several and keeping the best; since the best of G tries is reported,
each is tested at level (1 - confidence) / G (Bonferroni), so the reported bound holds at the stated
confidence for the choice too.
"""
import math
from typing import Sequence

import numpy as np
from scipy.stats import binom

CONFIDENCE = 0.95
GRID_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)   # k as a share of the m canaries, per side


def p_value(m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """P[at least v of r guesses correct] under (epsilon, delta)-DP with m canaries (module doc)."""
    if not (0 <= v <= r <= m and epsilon >= 0 and 0 <= delta < 1):
        raise ValueError(f"p_value: need 0 <= v={v} <= r={r} <= m={m}, epsilon={epsilon} >= 0, delta={delta} in [0, 1)")
    q = 1.0 / (1.0 + math.exp(-epsilon))           # e^eps / (1 + e^eps), stable
    beta = float(binom.sf(v - 1, r, q))             # P[Binomial(r, q) >= v]
    if delta == 0 or v == 0:
        return min(1.0, beta)
    alpha, below = 0.0, 0.0
    for i in range(1, v + 1):
        below += float(binom.pmf(v - i, r, q))      # P[v - i <= Binomial(r, q) < v]
        alpha = max(alpha, below / i)
    return min(1.0, beta + 2 * m * delta * alpha)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float = 0.0, level: float = 1 - CONFIDENCE,
                        tol: float = 1e-6) -> float:
    """The largest epsilon whose p-value is <= level (0 when even epsilon = 0 is not rejected)."""
    if r == 0 or p_value(m, r, v, 0.0, delta) > level:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) <= level:
        lo, hi = hi, 2 * hi
        if hi > 1e3:
            return math.inf                          # cannot happen for r >= 1 at level > 0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_value(m, r, v, mid, delta) <= level else (lo, mid)
    return lo


def guess_grid(m: int) -> list[tuple[int, int]]:
    """The (k+, k-) pairs tried: each fraction of m on both sides, and on one side only."""
    ks = sorted({max(1, round(f * m)) for f in GRID_FRACTIONS if 2 * max(1, round(f * m)) <= m})
    return [(k, k) for k in ks] + [(k, 0) for k in ks] + [(0, k) for k in ks]


def guesses(scores: np.ndarray, k_plus: int, k_minus: int) -> np.ndarray:
    """+1 for the k_plus highest scores, -1 for the k_minus lowest, 0 otherwise (ties broken by index)."""
    order = np.argsort(-scores, kind="stable")
    t = np.zeros(len(scores), np.int8)
    t[order[:k_plus]] = 1
    if k_minus:
        t[order[-k_minus:]] = -1
    return t


def audit_bound(scores: Sequence[float], included: Sequence[bool], delta: float = 0.0,
                confidence: float = CONFIDENCE, grid: list[tuple[int, int]] | None = None,
                comparisons: int = 1) -> dict:
    """The audit of one score vector (module doc): every (k+, k-) tried, and the best bound. `comparisons`:
    how many scores' bounds are reported together; the level is split across them as well (Bonferroni), so
    a verdict taken over all of them holds at `confidence`."""
    s, inc = np.asarray(scores, np.float64), np.asarray(included, bool)
    if s.ndim != 1 or len(s) != len(inc) or len(s) < 2 or not np.isfinite(s).all():
        raise ValueError(f"audit_bound: need finite scores [m] and included [m] with m >= 2, got {s.shape}, {inc.shape}")
    if comparisons < 1:
        raise ValueError(f"audit_bound: comparisons={comparisons} must be at least 1")
    m = len(s)
    grid = grid or guess_grid(m)
    level = (1 - confidence) / (len(grid) * comparisons)
    truth = np.where(inc, 1, -1)
    tried = []
    for k_plus, k_minus in grid:
        t = guesses(s, k_plus, k_minus)
        r, v = int((t != 0).sum()), int((t * truth > 0).sum())
        tried.append({"k_plus": k_plus, "k_minus": k_minus, "guesses": r, "correct": v,
                      "epsilon_lower_bound": epsilon_lower_bound(m, r, v, delta, level)})
    best = max(tried, key=lambda x: x["epsilon_lower_bound"])
    return {"canaries": m, "included": int(inc.sum()), "delta": delta, "confidence": confidence,
            "tests": len(grid) * comparisons, "level_per_test": level,
            "epsilon_lower_bound": best["epsilon_lower_bound"], "best": best, "tried": tried,
            "correction": f"the best of {len(grid)} (k+, k-) choices is reported" +
                          (f" for each of {comparisons} scores" if comparisons > 1 else "") +
                          f", each tested at level {1 - confidence:g} / {len(grid) * comparisons} (Bonferroni)"}
