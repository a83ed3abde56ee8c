"""Matcher calibration: genuine and impostor score distributions, thresholds at fixed false match
rates, the TAR there, the EER, and histograms for the audit's plots.

    e = matcher.embed(images)                                  # [N, D] unit rows
    cal = calibrate(e, identity_ids, matcher=matcher.version)  # all pairs, or a seeded sample when too many
    save_calibration(calibration_path(weights), cal)           # <weights>.calibration.json, beside the weights
    t = load_calibration(path).threshold_at(1e-3)              # a pair matches when its score >= t

Scores are cosine similarities (dot products of unit rows), float32 as the matchers produce them.
Genuine pairs: two different images (i < j) of one identity. Impostor pairs: images of two identities.

Definitions (FMR(t) = fraction of impostor scores >= t, FNMR(t) = fraction of genuine scores < t,
TAR(t) = 1 - FNMR(t)):

threshold at FMR f  The smallest float32 t with FMR(t) <= f. With M impostor scores sorted descending
                    d_1 >= ... >= d_M and K = the largest integer with K / M <= f, that is the float32
                    just above d_(K+1). Ties: scores equal to d_(K+1) all fall below t, so a tie is never
                    split and the observed FMR can be below f (it is reported as `fmr_observed`).
                    When f < 1 / M (K = 0) no impostor may match: t is just above the largest impostor
                    score, and a warning says the data cannot resolve that FMR; nothing is extrapolated.
supported           A threshold at FMR f is only as good as the false matches that set it: the point is
                    `supported` when K >= MIN_FALSE_MATCHES (10, so M >= 10 / f impostor pairs) and the
                    impostor pairs come from at least MIN_IDENTITIES (30) people. With fewer people the
                    pairs are few distinct pairs of people, each repeated over their images (5 people:
                    10 pairs of people, however many images), and the estimate says little about a
                    new person. `why_unsupported` says which condition failed.
EER                 FMR - FNMR is non-increasing in t and changes only at score values. Over the
                    candidates C = every distinct genuine or impostor score, plus the float32 just
                    above the largest: t1 = the largest candidate with FMR >= FNMR, t2 = the next
                    candidate. If FMR(t1) = FNMR(t1), EER = that value and its threshold is t1.
                    Otherwise the two operating points (FMR, FNMR) at t1 and t2 are joined by a line
                    (ROC interpolation) and EER is where it crosses FMR = FNMR, at fraction
                    lam = (a1 - b1) / ((a1 - b1) - (a2 - b2)) of the way (a = FMR, b = FNMR); the EER
                    threshold is t1 + lam * (t2 - t1), the same fraction of the way in score.
histograms          `bins` equal bins over [-1, 1] (numpy.histogram: [e_i, e_(i+1)), the last closed);
                    scores are clipped into [-1, 1] first, so rounding past +-1 is still counted.

Exact or sampled: a kind of pair is scored exhaustively when there are at most `max_pairs` of it,
row chunks at a time (never all N x N at once); otherwise `sample_pairs` pairs of that kind are drawn
uniformly, with replacement, from a generator seeded with `seed`, and the result says so.
"""
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from leakguard.atomic import write_text

FMRS = (1e-2, 1e-3, 1e-4)      # the operating points an audit reports
MAX_PAIRS = 20_000_000         # above this many pairs of a kind, that kind is sampled
CHUNK_ELEMENTS = 1 << 24       # scores computed at once in exact mode (64 MiB of float32)
SAMPLE_BLOCK = 1 << 20         # pairs drawn at once in sampled mode
GATHER_ELEMENTS = 1 << 22      # embedding entries gathered at once when scoring sampled pairs one by one
DENSE_GAIN = 64                # sampled pairs are scored via the score matrix when N^2 <= this x pairs
INDEX = np.int32               # image indices of sampled pairs (N < 2^31)
NORM_TOL = 1e-3                # |row norm - 1| accepted as a unit row
FORMAT = 1                     # version of the JSON layout
MIN_FALSE_MATCHES = 10         # impostor pairs at or above a supported FMR's threshold (K in the module doc)
MIN_IDENTITIES = 30            # people a supported FMR's impostor pairs come from


@dataclass
class ScoreSummary:
    """One distribution of scores (genuine or impostor)."""
    pairs_total: int           # pairs of this kind among the images
    pairs_used: int            # scores the numbers below come from
    sampled: bool              # True: pairs_used pairs drawn uniformly with replacement (seed in Calibration)
    mean: float
    std: float                 # population standard deviation (ddof = 0)
    min: float
    median: float              # numpy.median (mean of the two middle scores when pairs_used is even)
    max: float
    histogram: list[int]       # counts in Calibration.bins equal bins over [-1, 1]


@dataclass
class OperatingPoint:
    """The threshold at one target FMR and what it achieves on the calibration pairs."""
    fmr: float                 # target false match rate
    threshold: float           # a pair matches when score >= threshold
    fmr_observed: float        # fraction of impostor scores >= threshold (<= fmr)
    tar: float                 # fraction of genuine scores >= threshold
    supported: bool            # enough impostor pairs from enough people to estimate fmr (module doc)
    why_unsupported: str = ""  # which condition failed, for reports and warnings ('' when supported)
    threshold_ci: Optional[list] = None  # [low, high] over identity resamples (threshold_ci.py), or None


@dataclass
class Calibration:
    """Genuine and impostor statistics of one matcher on one labelled image set (definitions: module doc)."""
    matcher: str               # Matcher.version the embeddings came from ('' when not given)
    num_images: int
    num_identities: int
    embedding_dim: int
    mode: str                  # exact: every pair scored | sampled: at least one kind sampled
    seed: Optional[int]        # the sampling seed; None in exact mode
    genuine: ScoreSummary
    impostor: ScoreSummary
    points: list[OperatingPoint]
    eer: float                 # equal error rate, interpolated (module doc)
    eer_threshold: float       # score threshold at the EER
    bins: int                  # histogram bins over [-1, 1]
    warnings: list[str] = field(default_factory=list)
    format: int = FORMAT

    @property
    def hist_edges(self) -> np.ndarray:
        """[bins + 1] bin edges over [-1, 1] of both histograms."""
        return np.linspace(-1.0, 1.0, self.bins + 1)

    def point(self, fmr: float) -> OperatingPoint:
        """The operating point calibrated at target `fmr`, or an error listing those there are."""
        for p in self.points:
            if math.isclose(p.fmr, fmr, rel_tol=1e-9):
                return p
        raise KeyError(f"calibration of {self.matcher or 'this matcher'} has no operating point at "
                       f"FMR {fmr:g}; calibrated FMRs: {', '.join(f'{p.fmr:g}' for p in self.points)}")

    def threshold_at(self, fmr: float) -> float:
        return self.point(fmr).threshold

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, where: str = "calibration JSON") -> "Calibration":
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ValueError(f"{where}: format {d.get('format')!r}, this code reads format {FORMAT}")
        d = _checked_keys(cls, d, where)
        d["genuine"] = ScoreSummary(**_checked_keys(ScoreSummary, d["genuine"], f"{where}: genuine"))
        d["impostor"] = ScoreSummary(**_checked_keys(ScoreSummary, d["impostor"], f"{where}: impostor"))
        d["points"] = [OperatingPoint(**_checked_keys(OperatingPoint, p, f"{where}: points[{k}]"))
                       for k, p in enumerate(d["points"])]
        return cls(**d)


def _checked_keys(cls, d: dict, where: str) -> dict:
    """d if its keys are exactly cls's fields (those with defaults may be missing); else an error naming them."""
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    unknown, missing = sorted(set(d) - names), sorted(required - set(d))
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {unknown}, missing keys {missing}; "
                         f"valid keys: {', '.join(sorted(names))}")
    return dict(d)


# ---------------------------------------------------------------------------------------------------
# Pairs and their scores


@dataclass
class PairScores:
    """Scores of the pairs calibration uses, each float32 [pairs_used], in no particular order."""
    genuine: np.ndarray
    impostor: np.ndarray
    num_identities: int
    genuine_total: int         # genuine pairs among the images
    impostor_total: int        # impostor pairs among the images
    genuine_sampled: bool
    impostor_sampled: bool


def check_embeddings(embeddings, ids) -> tuple[np.ndarray, np.ndarray]:
    """-> (float32 [N, D] unit rows, int64 [N] identity labels 0..K-1), or errors naming the problem."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().float().numpy()
    e = np.asarray(embeddings)
    if e.ndim != 2 or e.shape[0] < 2 or e.shape[1] < 1:
        raise ValueError(f"calibrate: expected embeddings [N, D] with N >= 2, got shape {e.shape}")
    if not np.issubdtype(e.dtype, np.floating):
        raise ValueError(f"calibrate: expected float embeddings, got {e.dtype}")
    e = np.ascontiguousarray(e, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(e).all(axis=1))
    if len(bad):
        raise ValueError(f"calibrate: {len(bad)} embedding rows hold NaN or inf (first rows: {bad[:5].tolist()})")
    norms = np.linalg.norm(e.astype(np.float64), axis=1)
    off = np.flatnonzero(np.abs(norms - 1) > NORM_TOL)
    if len(off):
        raise ValueError(f"calibrate: embeddings must be L2-normalised rows (Matcher.embed output, or "
                         f"F.normalize(e, dim=1)); row {off[0]} has norm {norms[off[0]]:.6g} "
                         f"({len(off)} rows off by more than {NORM_TOL:g})")
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) != len(e):
        raise ValueError(f"calibrate: expected one identity id per embedding: {len(e)} embeddings, "
                         f"ids of shape {ids.shape}")
    _, labels = np.unique(ids, return_inverse=True)
    return e, labels.reshape(-1).astype(np.int64)


def _exact_scores(e: np.ndarray, labels: Optional[np.ndarray], same: bool, chunk_rows: int) -> np.ndarray:
    """Scores of every pair i < j whose labels are equal (same) or differ; labels None: every pair.
    Row chunks: at most chunk_rows x N scores exist at once."""
    n = len(e)
    out = [np.zeros(0, np.float32)]
    for i0 in range(0, n - 1, chunk_rows):
        i1 = min(i0 + chunk_rows, n)
        s = e[i0:i1] @ e[i0:].T                                            # [c, n - i0]; column k is image i0 + k
        keep = np.arange(i0, n)[None, :] > np.arange(i0, i1)[:, None]     # j > i
        if labels is not None:
            eq = labels[i0:i1, None] == labels[None, i0:]
            keep &= eq if same else ~eq
        out.append(s[keep])
    return np.concatenate(out)


def dot_products(e: np.ndarray, i: np.ndarray, j: np.ndarray, chunk_rows: int) -> np.ndarray:
    """Dot products e[i[k]] . e[j[k]] -> float32 [len(i)]. Few images for the pairs asked: the upper
    triangle of the score matrix, chunk_rows rows at a time, with the wanted entries picked out (a matmul
    computes a score about 100x faster than gathering two rows for it: bench/matchers.py). Many images:
    rows gathered pair by pair."""
    n, d = e.shape
    out = np.empty(len(i), np.float32)
    if n * n <= DENSE_GAIN * len(i):
        i, j = np.minimum(i, j), np.maximum(i, j)                  # the upper triangle is enough
        order = np.argsort(i, kind="stable")
        i_sorted = i[order]
        for i0 in range(0, n, chunk_rows):
            lo, hi = np.searchsorted(i_sorted, [i0, i0 + chunk_rows])
            if lo < hi:
                k = order[lo:hi]
                out[k] = (e[i0:i0 + chunk_rows] @ e[i0:].T)[i[k] - i0, j[k] - i0]  # [c, n - i0]: the asked ones
        return out
    step = max(1, GATHER_ELEMENTS // d)
    for k in range(0, len(i), step):
        out[k:k + step] = np.einsum("nd,nd->n", e[i[k:k + step]], e[j[k:k + step]])
    return out


def _sample_impostors(labels: np.ndarray, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """count impostor pairs (i, j), uniform over impostor pairs with replacement: an ordered pair of
    images drawn uniformly, kept when their identities differ ({i, j} and {j, i} are equally likely)."""
    n, i_out, j_out, have = len(labels), [], [], 0
    while have < count:
        m = min(SAMPLE_BLOCK, 2 * (count - have) + 64)              # most draws are kept: few rounds
        i = rng.integers(0, n, m)
        j = rng.integers(0, n, m)
        keep = labels[i] != labels[j]
        i_out.append(i[keep][:count - have].astype(INDEX))
        j_out.append(j[keep][:count - have].astype(INDEX))
        have += len(i_out[-1])
    return np.concatenate(i_out), np.concatenate(j_out)


def _sample_genuine(labels: np.ndarray, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """count genuine pairs (i, j), uniform over genuine pairs with replacement: an identity drawn with
    probability proportional to its c (c - 1) / 2 pairs, then two different images of it."""
    order = np.argsort(labels, kind="stable")                      # images grouped by identity
    sizes = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pairs = sizes * (sizes - 1) / 2
    p = pairs / pairs.sum()
    i_out, j_out, have = [], [], 0
    while have < count:
        m = min(SAMPLE_BLOCK, count - have)
        k = rng.choice(len(sizes), m, p=p)
        c = sizes[k]
        a = rng.integers(0, c)
        b = (a + 1 + rng.integers(0, c - 1)) % c                   # any member but a, uniformly
        i_out.append(order[starts[k] + a].astype(INDEX))
        j_out.append(order[starts[k] + b].astype(INDEX))
        have += m
    return np.concatenate(i_out), np.concatenate(j_out)


def pair_scores(embeddings, ids, max_pairs: int = MAX_PAIRS, sample_pairs: Optional[int] = None,
                seed: int = 0, chunk_rows: Optional[int] = None) -> PairScores:
    """Genuine and impostor scores of embeddings [N, D] (unit rows) with identity ids [N]: every pair
    of a kind when there are at most max_pairs of it, else sample_pairs (default max_pairs) drawn
    with `seed`. chunk_rows: rows scored at once in exact mode (default: about 16M scores a chunk)."""
    e, labels = check_embeddings(embeddings, ids)
    n = len(e)
    sizes = np.bincount(labels)
    if len(sizes) < 2:
        raise ValueError(f"calibrate: needs images of at least 2 identities for impostor pairs; all {n} "
                         "images have the same identity id")
    genuine_total = int(sum(int(c) * (int(c) - 1) // 2 for c in sizes))
    if genuine_total == 0:
        raise ValueError(f"calibrate: no genuine pairs: each of the {len(sizes)} identities has one image; "
                         "needs at least one identity with 2 or more images")
    impostor_total = n * (n - 1) // 2 - genuine_total
    if max_pairs < 1 or (sample_pairs is not None and sample_pairs < 1):
        raise ValueError(f"calibrate: max_pairs={max_pairs} and sample_pairs={sample_pairs} must be >= 1")
    sample_pairs = max_pairs if sample_pairs is None else sample_pairs
    chunk_rows = max(1, CHUNK_ELEMENTS // n) if chunk_rows is None else chunk_rows
    if chunk_rows < 1:
        raise ValueError(f"calibrate: chunk_rows={chunk_rows} must be >= 1")
    rng_genuine, rng_impostor = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    genuine_sampled = genuine_total > max_pairs
    if genuine_sampled:
        genuine = dot_products(e, *_sample_genuine(labels, sample_pairs, rng_genuine), chunk_rows)
    else:  # identity by identity: never the N x N matrix when only the genuine pairs are wanted
        order = np.argsort(labels, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        genuine = np.concatenate([_exact_scores(e[order[a:b]], None, True, chunk_rows)
                                  for a, b in zip(bounds[:-1], bounds[1:]) if b - a > 1])
    impostor_sampled = impostor_total > max_pairs
    if impostor_sampled:
        impostor = dot_products(e, *_sample_impostors(labels, sample_pairs, rng_impostor), chunk_rows)
    else:
        impostor = _exact_scores(e, labels, False, chunk_rows)
    return PairScores(genuine, impostor, len(sizes), genuine_total, impostor_total, genuine_sampled, impostor_sampled)


# ---------------------------------------------------------------------------------------------------
# Statistics of the scores


def allowed_false_matches(fmr: float, m: int) -> int:
    """The largest K with K / m <= fmr, as the float division a reader would check it with."""
    k = int(math.floor(fmr * m))
    while k < m and (k + 1) / m <= fmr:
        k += 1
    while k > 0 and k / m > fmr:
        k -= 1
    return k


def float32_above(x: float) -> float:
    """The smallest float32 greater than x (a float32 value)."""
    return float(np.nextafter(np.float32(x), np.float32(np.inf)))


def _rates(gen: np.ndarray, imp: np.ndarray, t: float) -> tuple[float, float]:
    """(FMR(t), FNMR(t)) from ascending score arrays."""
    fmr = (len(imp) - int(np.searchsorted(imp, np.float32(t), "left"))) / len(imp)
    fnmr = int(np.searchsorted(gen, np.float32(t), "left")) / len(gen)
    return fmr, fnmr


def _last_at_or_above_crossing(values: np.ndarray, gen: np.ndarray, imp: np.ndarray) -> float:
    """The largest of the ascending `values` with FMR >= FNMR (values[0] always qualifies)."""
    lo, hi = 0, len(values) - 1           # invariant: values[lo] qualifies
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fmr, fnmr = _rates(gen, imp, values[mid])
        if fmr >= fnmr:
            lo = mid
        else:
            hi = mid - 1
    return float(values[lo])


def equal_error_rate(gen: np.ndarray, imp: np.ndarray) -> tuple[float, float]:
    """(EER, its threshold) of ascending float32 score arrays, interpolated as in the module doc."""
    # The smallest genuine score has FNMR 0 and the smallest impostor score has FMR 1: both qualify.
    t1 = max(_last_at_or_above_crossing(gen, gen, imp), _last_at_or_above_crossing(imp, gen, imp))
    a1, b1 = _rates(gen, imp, t1)
    if a1 == b1:
        return a1, t1
    nxt = [float(s[k]) for s in (gen, imp) for k in [int(np.searchsorted(s, np.float32(t1), "right"))]
           if k < len(s)]
    t2 = min(nxt) if nxt else float32_above(max(gen[-1], imp[-1]))
    a2, b2 = _rates(gen, imp, t2)
    lam = (a1 - b1) / ((a1 - b1) - (a2 - b2))
    return a1 + lam * (a2 - a1), t1 + lam * (t2 - t1)


def operating_point(gen: np.ndarray, imp: np.ndarray, fmr: float, identities: int | None = None) -> OperatingPoint:
    """The threshold at target `fmr` (module doc) from ascending float32 score arrays of pairs among
    `identities` people."""
    if not 0 < fmr < 1:
        raise ValueError(f"calibrate: target FMR {fmr!r} must be in (0, 1)")
    m = len(imp)
    k = allowed_false_matches(fmr, m)
    t = float32_above(imp[m - 1 - k])     # just above d_(K+1), the (K+1)-th largest impostor score
    fmr_observed, _ = _rates(gen, imp, t)
    tar = (len(gen) - int(np.searchsorted(gen, np.float32(t), "left"))) / len(gen)  # not 1 - fnmr: exact count
    why = why_unsupported(fmr, m, identities)
    return OperatingPoint(fmr=fmr, threshold=t, fmr_observed=fmr_observed, tar=tar, supported=not why,
                          why_unsupported=why)


def why_unsupported(fmr: float, impostor_pairs: int, identities: int | None) -> str:
    """'' when `impostor_pairs` pairs from `identities` people (None: not known) support a threshold at
    `fmr` (module doc), else why not, in words a report can show."""
    reasons = []
    if allowed_false_matches(fmr, impostor_pairs) < MIN_FALSE_MATCHES:
        need = math.ceil(MIN_FALSE_MATCHES / fmr - 1e-9)
        reasons.append(f"{impostor_pairs:,} impostor pairs (it needs {need:,}, {MIN_FALSE_MATCHES} / FMR)")
    if identities is not None and identities < MIN_IDENTITIES:
        reasons.append(f"{identities} identities (it needs {MIN_IDENTITIES})")
    return f"FMR {fmr:g} is not supported by {' and '.join(reasons)}" if reasons else ""


def summarize(scores: np.ndarray, total: int, sampled: bool, bins: int) -> ScoreSummary:
    """Count, moments, extremes, median and histogram of float32 scores (sorted or not)."""
    s64 = scores.astype(np.float64)
    hist, _ = np.histogram(np.clip(scores, -1, 1), bins=bins, range=(-1.0, 1.0))
    return ScoreSummary(pairs_total=int(total), pairs_used=len(scores), sampled=bool(sampled),
                        mean=float(s64.mean()), std=float(s64.std()), min=float(scores.min()),
                        median=float(np.median(s64)), max=float(scores.max()),
                        histogram=[int(c) for c in hist])


def calibrate_scores(scores: PairScores, fmrs: Sequence[float] = FMRS, bins: int = 200) -> dict:
    """Operating points, EER and summaries of given scores -> the statistics fields of a Calibration."""
    if bins < 1:
        raise ValueError(f"calibrate: bins={bins} must be >= 1")
    if len(scores.genuine) == 0 or len(scores.impostor) == 0:
        raise ValueError(f"calibrate: needs genuine and impostor scores, got {len(scores.genuine)} "
                         f"genuine and {len(scores.impostor)} impostor")
    gen = np.sort(np.asarray(scores.genuine, np.float32))
    imp = np.sort(np.asarray(scores.impostor, np.float32))
    if not (np.isfinite(gen).all() and np.isfinite(imp).all()):
        raise ValueError("calibrate: scores hold NaN or inf")
    points = [operating_point(gen, imp, float(f), scores.num_identities) for f in fmrs]
    warnings = [f"FMR {p.fmr:g} is below 1 / {len(imp)} impostor pairs: the data cannot resolve it; its "
                f"threshold {p.threshold:.6g} only lies above every impostor score seen"
                if allowed_false_matches(p.fmr, len(imp)) == 0 else p.why_unsupported
                for p in points if not p.supported]
    eer, eer_threshold = equal_error_rate(gen, imp)
    return dict(genuine=summarize(gen, scores.genuine_total, scores.genuine_sampled, bins),
                impostor=summarize(imp, scores.impostor_total, scores.impostor_sampled, bins),
                points=points, eer=float(eer), eer_threshold=float(eer_threshold), bins=bins,
                warnings=warnings)


def calibrate(embeddings, ids, matcher: str = "", fmrs: Sequence[float] = FMRS, bins: int = 200,
              max_pairs: int = MAX_PAIRS, sample_pairs: Optional[int] = None, seed: int = 0,
              chunk_rows: Optional[int] = None) -> Calibration:
    """Calibration of embeddings [N, D] (unit rows, e.g. Matcher.embed) of images with identity ids [N]
    (ints or strings). Pairs: see pair_scores; definitions: the module doc."""
    for f in fmrs:
        if not 0 < f < 1:
            raise ValueError(f"calibrate: target FMR {f!r} must be in (0, 1)")
    scores = pair_scores(embeddings, ids, max_pairs=max_pairs, sample_pairs=sample_pairs, seed=seed,
                         chunk_rows=chunk_rows)
    return calibration_from_scores(scores, np.shape(embeddings), matcher=matcher, fmrs=fmrs, bins=bins, seed=seed)


def calibration_from_scores(scores: PairScores, shape: tuple[int, int], matcher: str = "",
                            fmrs: Sequence[float] = FMRS, bins: int = 200, seed: int = 0) -> Calibration:
    """The Calibration of pair scores already computed (pair_scores with `seed`) from embeddings of
    `shape` [N, D]: callers that also need the raw scores compute them once."""
    stats = calibrate_scores(scores, fmrs=fmrs, bins=bins)
    sampled = scores.genuine_sampled or scores.impostor_sampled
    if sampled:
        stats["warnings"].insert(0, f"sampled with seed {seed}: {len(scores.genuine)} of "
                                    f"{scores.genuine_total} genuine and {len(scores.impostor)} of "
                                    f"{scores.impostor_total} impostor pairs")
    n, d = shape
    return Calibration(matcher=matcher, num_images=n, num_identities=scores.num_identities, embedding_dim=d,
                       mode="sampled" if sampled else "exact", seed=seed if sampled else None, **stats)


# ---------------------------------------------------------------------------------------------------
# Files


def calibration_path(weights: str | Path) -> Path:
    """Where a matcher's calibration lives: beside its weights, as <weights>.calibration.json."""
    return Path(str(Path(weights).expanduser()) + ".calibration.json")


def save_calibration(path: str | Path, cal: Calibration) -> Path:
    """Writes cal as JSON to path atomically (a temporary file in the same folder, then a rename)."""
    return write_text(path, cal.to_json())


def load_calibration(path: str | Path) -> Calibration:
    """The Calibration saved at path, or an error naming the file and what is wrong with it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path} (write one with "
                                "leakguard.matchers.calibrate.save_calibration)")
    try:
        return Calibration.from_json(path.read_text(), where=str(path))
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path}: not a calibration file: {err}") from err
