"""Are the fakes faces at all, and how much do the faces among them leak? A generator that draws coloured
noise leaks nothing (its leak rate is 0) and protects no one: it makes no faces. So beside every leak
rate the audit says which fakes are faces, by up to two tests, and the leak rate among those.

    tests = [in_manifold_test(real_features, fake_features, extractor), detector_test(found, dlib_matcher)]
    section = faces_section(tests, best, leakage, resamples=1000, seed=0)   # report["faces"], eval.jsonl's "faces"

Tests, each a [G] bool over the generated faces:
    manifold  per fidelity extractor: the fake lies inside the real images' k-NN manifold in its features,
              the precision ball of Kynkäänniemi et al. 2019 (leakguard.fidelity.metrics.in_real_manifold,
              k as the fidelity scores use it: 3, capped below both set sizes). Its share is the precision.
    detector  per matcher with a face detector (dlib): the detector finds a face in the fake
              (leakguard.audit.detection).

The section: {"manifold": {<extractor metric prefix>: entry}, "detector": {<matcher>: entry}}, a kind
left out when it has no test. An entry:
    rule             what counts as a face, in words (with the extractor, its version and k for manifold)
    count, of        the fakes the test calls faces, out of all G
    share, share_ci  count / of and its 95% Wilson interval (metrics.wilson_interval: fakes are independent)
    mostly_not_faces share < MIN_FACE_SHARE: most fakes are not faces, so a low leak rate is no finding
    leakage          {matcher: one row per FMR of the audit}: fmr, threshold and supported as the audit's row;
                     leaking_samples, the faces whose best score over the training identities reaches the
                     threshold; leak_rate = leaking_samples / count among the faces, and leak_rate_ci, its
                     percentile bootstrap interval over the faces (metrics.leak_rate_intervals, the audit's own
                     resamples and seed); both null when no fake is a face.
"""
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from leakguard.audit import metrics
from leakguard.fidelity.metrics import in_real_manifold
from leakguard.fidelity.scores import K, neighbours

MIN_FACE_SHARE = 0.5     # below this share of faces (under the first extractor, in sweeps) the fakes are "not faces"
KINDS = ("manifold", "detector")


@dataclass
class FaceTest:
    """Which fakes one test calls faces."""
    kind: str                # one of KINDS
    name: str                # the extractor's metric prefix (manifold) or the matcher's name (detector)
    rule: str                # what counts as a face, in words
    faces: np.ndarray        # [G] bool
    facts: dict = field(default_factory=dict)   # reported with it (extractor, version, k)


def manifold_test(faces: np.ndarray, extractor, k: int) -> FaceTest:
    """The manifold test from its mask: faces [G] bool, the fakes inside the real k-NN manifold of
    `extractor`'s features with k neighbours (fidelity_scores' in_manifold, or in_manifold_test)."""
    return FaceTest("manifold", extractor.metric_prefix,
                    f"inside the training images' k-NN manifold of {extractor.name} features (precision's balls, "
                    f"k = {k})", np.asarray(faces, bool),
                    {"extractor": extractor.name, "extractor_version": extractor.version, "k": k})


def in_manifold_test(real, fake, extractor, k: int = K) -> FaceTest:
    """The manifold test computed: real [N_r, D] and fake [G, D] features of `extractor`, k capped as the
    fidelity scores cap it, so the share equals their precision."""
    k = neighbours(k, len(real), len(fake))
    if k < 1:
        raise ValueError(f"faces under {extractor.metric_prefix}: the k-NN manifold needs at least 2 real and 2 "
                         f"generated images, got {len(real)} and {len(fake)}")
    return manifold_test(in_real_manifold(np.asarray(real, np.float64), np.asarray(fake, np.float64), k=k),
                         extractor, k)


def detector_test(faces: np.ndarray, matcher) -> FaceTest:
    """The fakes in which `matcher`'s face detector finds a face (faces: [G] bool, detection.detected_faces)."""
    return FaceTest("detector", matcher.name, f"{matcher.name}'s face detector finds a face (upsample "
                                              f"{getattr(matcher, 'upsample', '?')})", np.asarray(faces, bool))


def leak_among_faces(best, faces: np.ndarray, leakage: Sequence[dict], resamples: int = metrics.RESAMPLES,
                     seed: int = 0) -> list[dict]:
    """One matcher's leak rates among the faces: best [G] its best scores, faces [G] bool, leakage its audit
    rows (fmr, threshold, supported); the row keys of the module doc."""
    b = np.asarray(best, np.float64)
    faces = np.asarray(faces)
    if faces.dtype != bool or faces.shape != b.shape:
        raise ValueError(f"leak_among_faces: faces must be a bool mask of the {len(b)} generated faces, got "
                         f"{faces.dtype} of shape {faces.shape}")
    among = b[faces]                                                          # [F]
    thresholds = [float(r["threshold"]) for r in leakage]
    ci = metrics.leak_rate_intervals(among, thresholds, resamples, seed) if len(among) and thresholds else None
    rows = []
    for i, r in enumerate(leakage):
        rows.append({"fmr": r["fmr"], "threshold": r["threshold"], "supported": r["supported"],
                     "leaking_samples": int(np.count_nonzero(among >= thresholds[i])),
                     "leak_rate": metrics.leak_rate(among, thresholds[i]) if len(among) else None,
                     "leak_rate_ci": [float(ci.low[i]), float(ci.high[i])] if ci is not None else None})
    return rows


def face_entry(test: FaceTest, best: dict, leakage: dict, resamples: int = metrics.RESAMPLES, seed: int = 0) -> dict:
    """One test's entry (module doc); best {matcher: [G]} and leakage {matcher: audit rows}, the same matchers."""
    if test.kind not in KINDS:
        raise ValueError(f"face test {test.name}: kind {test.kind!r}; expected one of {', '.join(KINDS)}")
    if set(best) != set(leakage):
        raise ValueError(f"face test {test.name}: best scores of {sorted(best)} but leak rows of {sorted(leakage)}")
    count, of = int(np.count_nonzero(test.faces)), len(test.faces)
    if of == 0:
        raise ValueError(f"face test {test.name}: no generated faces")
    return {"rule": test.rule, **test.facts, "count": count, "of": of, "share": count / of,
            "share_ci": metrics.wilson_interval(count, of), "mostly_not_faces": count / of < MIN_FACE_SHARE,
            "leakage": {name: leak_among_faces(best[name], test.faces, leakage[name], resamples, seed)
                        for name in leakage}}


def faces_section(tests: Sequence[FaceTest], best: dict, leakage: dict, resamples: int = metrics.RESAMPLES,
                  seed: int = 0) -> dict:
    """{kind: {name: entry}} for the tests, in their order; {} without tests."""
    out = {}
    for t in tests:
        out.setdefault(t.kind, {})[t.name] = face_entry(t, best, leakage, resamples, seed)
    return {kind: out[kind] for kind in KINDS if kind in out}
