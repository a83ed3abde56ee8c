"""The audit's numbers from scores (cosines, as leakguard.audit.search returns them): identity leakage,
identity membership, ROC, KS, bootstrap intervals and histograms. Plain numpy; tensors are accepted.

Identity leakage (Tinsley et al., "This Face Does Not Exist ... But It Might Be Yours!", WACV 2021).
best [G]: each generated sample's best score over the training identities (topk_identities, k = 1).
    leak rate at t      #(best >= t) / G; a pair matches when its score >= t, as in matchers.calibrate.
    chance rate         Model: a face of nobody in training is compared with each training image, each
                        comparison a false match independently with probability f, the matcher's FMR at
                        t (use the calibration's fmr_observed). Against n comparisons the chance of at
                        least one match is 1 - (1 - f)^n. One image per identity: n = K identities. With
                        the max over several images per identity, the images of one identity are
                        correlated: an identity of n_j images matches by chance with a probability
                        between f (the images behave as one) and 1 - (1 - f)^(n_j) (independent), so the
                        chance rate lies between chance_rate(f, K) and chance_rate(f, N = sum n_j images);
                        `chance_bounds` gives both. 1 - (1 - f)^n nears 1 once n f >> 1: only an FMR well
                        below 1 / K leaves room to see leakage above chance.
    leak ratio          leak rate / chance rate (inf when chance is 0 and leak is not, nan when both are).
    leak counts         per training identity, the generated samples whose best identity it is with
                        best >= t; top leakers: the most counts first, ties by the lower id, counts > 0.

Identity membership (Webster et al., "This Person (Probably) Exists", CVPR 2021).
From the held-out reference embeddings R of a candidate identity and the generated embeddings G:
    nearest score       n_r = max_g s(r, g) for each reference r (topk_cosine(R, G, 1)).
    best                max_r n_r = max over all (r, g) of s(r, g).
    topk_mean           mean of the min(k, |R|) largest n_r: each reference votes once, with its
                        nearest generated face, so one generated face near one reference cannot fill it.
An attack score is higher for identities more likely in training; members are labelled 1.
    ROC                 decide "member" when score >= t. Thresholds: +inf (the point (0, 0)), then
                        every distinct score, descending; the last gives (1, 1). Tied scores move together.
    AUC                 the area under that ROC (trapezoids) = the Mann-Whitney U / (P N): the fraction of
                        (member, non-member) pairs the score orders correctly, ties counted 1/2.
    TPR at FPR a        the highest TPR among the ROC points whose FPR <= a (no interpolation); of the
                        points with that TPR, the one of lowest FPR (highest threshold), whose FPR and
                        threshold are reported with it (+inf when only the point (0, 0) qualifies).
    KS                  two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) - F_b(x)|, F the empirical
                        CDFs (F(x) = #(<= x) / n); the sup is reached at a point of the pooled samples.
                        For the audit: nearest scores of references vs genuine and vs impostor scores.

Bootstrap: percentile intervals. `resamples` (default 1000) resamples, each drawing every stratum's
units with replacement, as many as it has, from numpy.random.default_rng(seed) (default seed 0); the
interval is the (1 - level) / 2 and (1 + level) / 2 quantiles (numpy's linear interpolation) of the
statistic over the resamples. Units: generated samples for leak rates; identities for membership,
members and non-members resampled separately so both classes stay present. A percentile interval
can exclude the estimate for a very discrete statistic on few units; the estimate is reported beside it.

Histograms: `bins` equal bins over [-1, 1] (numpy.histogram: [e_i, e_(i+1)), the last closed), scores
clipped into [-1, 1] first, as matchers.calibrate does.
"""
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

RESAMPLES = 1000           # bootstrap resamples
LEVEL = 0.95               # bootstrap interval coverage
FPRS = (1e-2, 1e-3)        # membership operating points an audit reports


def _vector(x, name: str, where: str) -> np.ndarray:
    """x as a non-empty finite float64 [n] array, or an error naming what is wrong."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"{where}: expected {name} as a non-empty 1-D array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{where}: expected numeric {name}, got {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {name} hold NaN or inf (first at {int(np.flatnonzero(~np.isfinite(a))[0])})")
    return a


def _ints(x, name: str, n: int, where: str) -> np.ndarray:
    """x as an int64 [n] array (one per score), or an error."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.shape != (n,) or not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{where}: expected {name} as {n} integers (one per score), got {a.dtype} of shape {a.shape}")
    return a.astype(np.int64)


def _classes(scores, labels, where: str) -> tuple[np.ndarray, np.ndarray]:
    """-> (member scores, non-member scores) from scores [n] and labels [n] in {0, 1}."""
    s = _vector(scores, "scores", where)
    y = _ints(labels, "labels", len(s), where)
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{where}: labels must be 1 (member) or 0 (non-member), got {sorted(set(y.tolist()))[:5]}")
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"{where}: needs members and non-members, got {len(pos)} members and {len(neg)} non-members")
    return pos, neg


# ---------------------------------------------------------------------------------------------------
# Identity leakage


def leak_rate(best, t: float) -> float:
    """Fraction of generated samples whose best training-identity score [G] is >= t."""
    b = _vector(best, "best scores", "leak_rate")
    return float(np.count_nonzero(b >= t) / len(b))


def chance_rate(fmr: float, comparisons: int) -> float:
    """1 - (1 - fmr)^comparisons: the chance a non-member matches at least one of `comparisons`
    independent comparisons, each a false match with probability fmr (module doc)."""
    if not 0 <= fmr <= 1 or comparisons < 0:
        raise ValueError(f"chance_rate: fmr={fmr!r} must be in [0, 1] and comparisons={comparisons!r} >= 0")
    if fmr == 1:
        return 1.0 if comparisons > 0 else 0.0
    return float(-np.expm1(comparisons * np.log1p(-fmr)))     # stable for tiny fmr


def chance_bounds(fmr: float, identities: int, images: int) -> tuple[float, float]:
    """(low, high) chance rate when the max over `images` images of `identities` identities is taken:
    images of one identity fully correlated (low) or independent (high); module doc."""
    if images < identities:
        raise ValueError(f"chance_bounds: {images} images cannot hold {identities} identities")
    return chance_rate(fmr, identities), chance_rate(fmr, images)


def leak_ratio(leak: float, chance: float) -> float:
    """leak / chance; inf when only chance is 0, nan when both are."""
    if chance > 0:
        return leak / chance
    return float("inf") if leak > 0 else float("nan")


def _id_array(x, name: str, where: str) -> np.ndarray:
    """Identity ids (list, numpy or torch) as int64 [K]."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{where}: expected {name} as a 1-D array of integer ids, got {a.dtype} of shape {a.shape}")
    return a.astype(np.int64)


def leak_counts(best, best_ids, t: float, identities) -> np.ndarray:
    """[K] per identity of `identities` [K] (ids searched, distinct): how many generated samples have it
    as best identity (best_ids [G]) with best score (best [G]) >= t."""
    where = "leak_counts"
    b = _vector(best, "best scores", where)
    ids = _ints(best_ids, "best identity ids", len(b), where)
    universe = _id_array(identities, "identities", where)
    if len(np.unique(universe)) != len(universe):
        raise ValueError(f"{where}: identities must be distinct ids, got {len(universe)} with repeats")
    order = np.argsort(universe)
    hit = ids[b >= t]
    pos = np.minimum(np.searchsorted(universe[order], hit), len(universe) - 1)   # [hits] sorted positions
    missing = hit[universe[order][pos] != hit]
    if len(missing):
        raise ValueError(f"{where}: best identity id {int(missing[0])} is not among the {len(universe)} identities")
    return np.bincount(order[pos], minlength=len(universe)).astype(np.int64)


def top_leakers(identities, counts, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, counts) of at most n identities with the most leak counts (> 0), most first, ties by the lower id."""
    ids = _id_array(identities, "identities", "top_leakers")
    c = _id_array(counts, "counts", "top_leakers")
    if ids.shape != c.shape:
        raise ValueError(f"top_leakers: {len(ids)} identities but {len(c)} counts")
    order = np.lexsort((ids, -c))                           # the last key first: counts descending, then id
    order = order[c[order] > 0][:n]
    return ids[order], c[order]


# ---------------------------------------------------------------------------------------------------
# Identity membership


def membership_scores(nearest, reference_ids, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attack scores per candidate identity from each reference's nearest generated score [R] and its
    identity id [R] -> (ids ascending [C], best [C], topk_mean [C]) as defined in the module doc."""
    where = "membership_scores"
    n = _vector(nearest, "nearest scores", where)
    rid = _ints(reference_ids, "reference identity ids", len(n), where)
    if k < 1:
        raise ValueError(f"{where}: k={k} must be >= 1")
    order = np.lexsort((-n, rid))                           # by identity, then score descending
    rid, n = rid[order], n[order]
    ids, first, size = np.unique(rid, return_index=True, return_counts=True)
    rank = np.arange(len(n)) - np.repeat(first, size)       # 0 = the identity's best reference
    take = rank < k
    sums = np.bincount(np.repeat(np.arange(len(ids)), size)[take], weights=n[take], minlength=len(ids))
    return ids, n[first], sums / np.minimum(size, k)


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr [T], tpr [T], thresholds [T]) with member when score >= threshold: +inf, then every distinct
    score descending (module doc)."""
    pos, neg = _classes(scores, labels, "roc_curve")
    t = np.concatenate([[np.inf], np.unique(np.concatenate([pos, neg]))[::-1]])
    tpr = (len(pos) - np.searchsorted(np.sort(pos), t, side="left")) / len(pos)
    fpr = (len(neg) - np.searchsorted(np.sort(neg), t, side="left")) / len(neg)
    return fpr, tpr, t


def roc_auc(scores, labels) -> float:
    """Area under the ROC = Mann-Whitney U / (P N), ties counted 1/2: by mid-ranks of the pooled scores."""
    pos, neg = _classes(scores, labels, "roc_auc")
    pooled = np.concatenate([pos, neg])
    values, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    midrank = np.cumsum(counts) - (counts - 1) / 2          # 1-based mean rank of each distinct value
    u = midrank[inverse[:len(pos)]].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def tpr_at_fpr(scores, labels, fpr: float) -> tuple[float, float, float]:
    """(TPR, FPR, threshold) of the ROC point with the highest TPR whose FPR <= fpr, the lowest FPR
    among those of that TPR."""
    if not 0 <= fpr <= 1:
        raise ValueError(f"tpr_at_fpr: target FPR {fpr!r} must be in [0, 1]")
    f, t, th = roc_curve(scores, labels)
    last = int(np.searchsorted(f, fpr, side="right")) - 1    # fpr and tpr rise along the curve
    i = int(np.searchsorted(t, t[last], side="left"))       # the first point reaching that TPR
    return float(t[i]), float(f[i]), float(th[i])


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) - F_b(x)| over the pooled points."""
    a = np.sort(_vector(a, "first sample", "ks_statistic"))
    b = np.sort(_vector(b, "second sample", "ks_statistic"))
    x = np.concatenate([a, b])
    fa = np.searchsorted(a, x, side="right") / len(a)
    fb = np.searchsorted(b, x, side="right") / len(b)
    return float(np.abs(fa - fb).max())


# ---------------------------------------------------------------------------------------------------
# Bootstrap


@dataclass
class Interval:
    """A statistic and its bootstrap percentile interval (module doc); arrays when the statistic is one."""
    estimate: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float
    level: float
    resamples: int
    seed: int


def bootstrap(statistic: Callable[[np.ndarray], float | np.ndarray], strata: Sequence[np.ndarray],
              resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """statistic(units) on all units and its percentile interval: units is an int array of indices
    drawn per stratum (each stratum an index array, resampled with replacement to its own size)."""
    strata = [np.asarray(s, np.int64) for s in strata]
    if not strata or any(len(s) == 0 for s in strata):
        raise ValueError(f"bootstrap: every stratum needs units, got sizes {[len(s) for s in strata]}")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"bootstrap: resamples={resamples} must be >= 1 and level={level} in (0, 1)")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata]))
                       for _ in range(resamples)])          # [resamples] or [resamples, S]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
    estimate = statistic(np.concatenate(strata))
    scalar = np.ndim(estimate) == 0
    return Interval(float(estimate) if scalar else np.asarray(estimate), float(low) if scalar else low,
                    float(high) if scalar else high, level, resamples, seed)


def leak_rate_intervals(best, thresholds: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                        level: float = LEVEL) -> Interval:
    """Leak rates at each of thresholds [T] (arrays [T]), generated samples resampled."""
    b = _vector(best, "best scores", "leak_rate_intervals")
    t = np.asarray(thresholds, np.float64)[None, :]          # [1, T]
    return bootstrap(lambda u: (b[u, None] >= t).mean(axis=0), [np.arange(len(b))], resamples, seed, level)


def membership_intervals(scores, labels, fprs: Sequence[float] = FPRS, resamples: int = RESAMPLES,
                         seed: int = 0, level: float = LEVEL) -> dict[str, Interval]:
    """{"auc": ..., "tpr@<fpr>": ...} for attack scores [C] of identities labelled 1 (member) or 0,
    identities resampled within each class."""
    pos, neg = _classes(scores, labels, "membership_intervals")
    s = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    strata = [np.arange(len(pos)), len(pos) + np.arange(len(neg))]
    out = {"auc": bootstrap(lambda u: roc_auc(s[u], y[u]), strata, resamples, seed, level)}
    for f in fprs:
        out[f"tpr@{f:g}"] = bootstrap(lambda u, f=f: tpr_at_fpr(s[u], y[u], f)[0], strata, resamples, seed, level)
    return out


def histogram(scores, bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(counts [bins] int64, edges [bins + 1]) over [-1, 1], scores clipped into it first (module doc)."""
    if bins < 1:
        raise ValueError(f"histogram: bins={bins} must be >= 1")
    s = _vector(scores, "scores", "histogram")
    counts, edges = np.histogram(np.clip(s, -1, 1), bins=bins, range=(-1.0, 1.0))
    return counts.astype(np.int64), edges


# ---------------------------------------------------------------------------------------------------
# What a release filter would drop (leakguard.filter uses the same rule on its candidates)

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> list[float]:
    """95% Wilson score interval of a proportion k / n of independent draws (generated faces, files);
    [0, 1] when n = 0."""
    if n == 0:
        return [0.0, 1.0]
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half)]


def rate(k: int, n: int) -> dict:
    """A count out of n with its rate and 95% Wilson interval."""
    return {"count": k, "of": n, "rate": k / n if n else None, "rate_ci": wilson_interval(k, n)}


def union_drop(best: dict, thresholds: dict) -> dict:
    """The release filter's rule on best scores already computed: best {matcher: [n] best scores over the
    training identities}, thresholds {matcher: tau}; a face is dropped when it reaches tau under any matcher."""
    if not best:
        raise ValueError("union_drop: no matcher")
    drop = np.zeros(len(next(iter(best.values()))), bool)
    for name, scores in best.items():
        drop |= np.asarray(scores) >= thresholds[name]
    return rate(int(drop.sum()), len(drop))
