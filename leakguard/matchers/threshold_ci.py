"""How far a threshold could move with other people: a bootstrap over identities.

The people, not the pairs, are the sample: a threshold set by 5 people's 160 impostor pairs rests
on 10 pairs of people. Each replicate draws the K identities with replacement (weights w_k ~
Multinomial(K, 1/K)); an impostor pair of images of identities a != b then counts w_a * w_b times,
exactly as if the drawn people's images were copied in (two draws of one person are one person:
their pairs are genuine, not impostor). The threshold at FMR f is computed on that weighted multiset
by calibrate's definition (the float32 just above the (K+1)-th largest impostor score, ties never
split), and the interval is the percentile interval of the replicates.

Exact, so only where the data allow: every impostor pair is scored and kept (at most `max_pairs`);
larger sets get no interval (None) rather than an approximate one.
"""
import math
from typing import Optional, Sequence

import numpy as np

from leakguard.matchers.calibrate import (CHUNK_ELEMENTS, Calibration, allowed_false_matches, check_embeddings,
                                          dot_products, float32_above)

MAX_PAIRS = 2_000_000   # impostor pairs kept for the bootstrap (16 MB of scores and labels)
RESAMPLES = 200
LEVEL = 0.95


def impostor_pairs(embeddings, ids, max_pairs: int = MAX_PAIRS):
    """(scores descending float32 [M], identity labels a [M], b [M], K) of every impostor pair, or None
    when there are more than max_pairs."""
    e, labels = check_embeddings(embeddings, ids)
    n = len(e)
    counts = np.bincount(labels)
    m = (n * (n - 1) - int((counts * (counts - 1)).sum())) // 2
    if m == 0 or m > max_pairs:
        return None
    i, j = np.triu_indices(n, 1)
    keep = labels[i] != labels[j]
    i, j = i[keep], j[keep]
    scores = dot_products(e, i, j, max(1, CHUNK_ELEMENTS // n))   # calibrate's scoring, in bounded memory
    order = np.argsort(-scores, kind="stable")
    return scores[order], labels[i][order], labels[j][order], len(counts)


def bootstrap_thresholds(pairs, fmrs: Sequence[float], resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """[R, F] thresholds of the replicates (NaN where a replicate drew a single person: no impostors)."""
    scores, a, b, k = pairs
    rng = np.random.default_rng(seed)
    out = np.full([resamples, len(fmrs)], np.nan)
    for r in range(resamples):
        w = rng.multinomial(k, np.full(k, 1.0 / k)).astype(np.int64)    # [K] draws per identity
        cum = np.cumsum(w[a] * w[b])                                       # [M] weighted count from the top
        total = int(cum[-1])
        if total == 0:
            continue
        for f_i, f in enumerate(fmrs):
            allowed = allowed_false_matches(f, total)
            out[r, f_i] = float32_above(scores[int(np.searchsorted(cum, allowed + 1))])  # the (K+1)-th largest
    return out


def threshold_intervals(embeddings, ids, fmrs: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                        level: float = LEVEL, max_pairs: int = MAX_PAIRS) -> Optional[dict]:
    """{fmr: [low, high]} percentile intervals of the threshold over identity resamples, or None when
    the set has more than max_pairs impostor pairs (module doc)."""
    pairs = impostor_pairs(embeddings, ids, max_pairs)
    if pairs is None:
        return None
    t = bootstrap_thresholds(pairs, fmrs, resamples, seed)
    q = (1 - level) / 2
    out = {}
    for f_i, f in enumerate(fmrs):
        column = t[:, f_i][np.isfinite(t[:, f_i])]
        out[f] = ([float(np.quantile(column, q)), float(np.quantile(column, 1 - q))] if len(column)
                  else [math.nan, math.nan])
    return out


def with_threshold_intervals(cal: Calibration, embeddings, ids, seed: int = 0) -> Calibration:
    """`cal` (calibrated on embeddings [N, D] of identities ids [N]) with each point's threshold_ci,
    where the data allow it (module doc); the points are updated in place."""
    ci = threshold_intervals(embeddings, ids, [p.fmr for p in cal.points], seed=seed)
    if ci is not None:
        for p in cal.points:
            p.threshold_ci = [v if math.isfinite(v) else None for v in ci[p.fmr]]
    return cal
