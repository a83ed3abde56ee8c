"""One audit of generated faces against a training set, per matcher: the numbers of report.json.

    report, pairs = run_audit(AuditInputs(generated=ImageTensor(fakes), training=ImageFiles("train.zip"),
                                          members=ImageFiles("held_out.zip"), nonmembers=ImageFiles("others.zip")),
                              [build_matcher(MatcherConfig("synth", weights="synth.pt"))])

Identity leakage: R-R (training genuine and impostor pairs) against R-G (each generated face's best
score over the training identities, the max over an identity's images); a generated face leaks at
FMR f when that score reaches the matcher's threshold at f. Thresholds come from the matcher's own
calibration file when there is one (independent data), else from the training set's R-R pairs.
Identity membership: each reference identity's attack score from its held-out images against the
generated faces (metrics.membership_scores), members labelled 1, ROC over identities; and the same AUC for the
over-represented members alone (training images at least OVERREP_FACTOR x the median person's; Webster et al.:
an over-represented person is the privacy risk) against every non-member.
Faces (report["faces"], leakguard.audit.faces): which generated images are faces at all, by the face
detector of each matcher that has one (dlib) and, for each fidelity extractor given (`extractors`), by
the real images' k-NN manifold in its features; the share of faces and the leak rate among them, per
matcher and FMR. Left out when no matcher has a detector and no extractor is given.
Definitions of every number: leakguard.audit.metrics, leakguard.audit.faces and leakguard.matchers.calibrate.
"""
import datetime
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from leakguard.audit import metrics
from leakguard.audit.alignment import alignment_warning
from leakguard.audit.detection import detected_faces, has_detector
from leakguard.audit.faces import FaceTest, detector_test, faces_section, in_manifold_test
from leakguard.audit.search import topk_cosine, topk_identities
from leakguard.audit.store import EmbeddingStore
from leakguard.matchers.base import Matcher
from leakguard.matchers.calibrate import (MIN_IDENTITIES, Calibration, calibration_from_scores, pair_scores,
                                          why_unsupported)
from leakguard.matchers.published import RawFeatures, nearest_distances, published_point
from leakguard.matchers.threshold_ci import with_threshold_intervals

FMRS = (1e-2, 1e-3, 1e-4)
FORMAT = 1
OVERREP_FACTOR = 5.0    # a person with at least this many times the median person's training images is over-represented


@dataclass
class AuditInputs:
    generated: object                    # ImageFiles or ImageTensor: the generator's samples
    training: object                     # ImageFiles with identities: the generator's training set
    members: Optional[object] = None     # held-out images of training identities (with identities)
    nonmembers: Optional[object] = None  # images of identities never in training (with identities)
    generated_info: dict = field(default_factory=dict)  # seeds, truncation psi, generator path


@dataclass
class AuditSettings:
    fmrs: Sequence[float] = FMRS         # false-match rates the leak rates are reported at
    top_k: int = 5                       # membership: references per identity in the topk_mean score
    bootstrap: int = 1000                # resamples for every interval
    seed: int = 0                        # bootstrap and pair sampling
    max_pairs: int = 20_000_000          # R-R pairs scored exactly up to this, sampled beyond
    top_pairs: int = 16                  # leaking (generated, training) pairs kept for the report grid
    top_leakers: int = 20                # identities listed by leak count
    published: Sequence[str] = ()        # matchers whose published operating point is shown too (e.g. dlib)


def _describe(images, with_ids: bool) -> dict:
    d = {"source": repr(images), "images": len(images)}
    if with_ids:
        d["identities"] = int(len(np.unique(images.identities)))
    return d


def overrepresented(train_ids: np.ndarray) -> np.ndarray:
    """The training identities with at least OVERREP_FACTOR x the median person's number of images."""
    ids, counts = np.unique(train_ids, return_counts=True)
    return ids[counts >= OVERREP_FACTOR * np.median(counts)]


def membership_section(emb_members, ids_members, emb_nonmembers, ids_nonmembers, gen: torch.Tensor,
                       s: AuditSettings, overrep: np.ndarray = np.array([], np.int64)) -> dict:
    """Attack score (topk_mean) per reference identity, members labelled 1; ROC, AUC, TPR@FPR with intervals;
    the AUC of the members among `overrep` (training identities) against every non-member."""
    scores, best_scores, labels, people = [], [], [], []
    for emb, ids, label in ((emb_members, ids_members, 1), (emb_nonmembers, ids_nonmembers, 0)):
        refs = torch.from_numpy(np.array(emb)).to(gen.device)
        nearest = topk_cosine(refs, gen, k=1).scores[:, 0].cpu().numpy()           # [R]
        who, best, topk_mean = metrics.membership_scores(nearest, ids, s.top_k)
        scores.append(topk_mean)
        best_scores.append(best)
        labels.append(np.full(len(topk_mean), label))
        people.append(who)
    chosen = np.isin(people[0], overrep)                                            # [members] over-represented
    over = _overrep_auc(scores[0][chosen], scores[1], people[0][chosen], s)
    scores, labels, best_scores = np.concatenate(scores), np.concatenate(labels), np.concatenate(best_scores)
    fpr, tpr, _ = metrics.roc_curve(scores, labels)
    ci = metrics.membership_intervals(scores, labels, fprs=(1e-2, 1e-3), resamples=s.bootstrap, seed=s.seed)
    tprs = {f"{f:g}": metrics.tpr_at_fpr(scores, labels, f)[0] for f in (1e-2, 1e-3)}
    return {"k": s.top_k, "score": "topk_mean", "members": int(labels.sum()), "nonmembers": int((1 - labels).sum()),
            "auc": metrics.roc_auc(scores, labels), "auc_ci": [ci["auc"].low, ci["auc"].high],
            "auc_best": metrics.roc_auc(best_scores, labels),  # the attack with the single best pair instead
            "tpr_at_fpr": tprs, "tpr_at_fpr_ci": {k: [ci[f"tpr@{k}"].low, ci[f"tpr@{k}"].high] for k in tprs},
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}, "overrepresented": over}


def _overrep_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray, ids: np.ndarray, s: AuditSettings):
    """AUC of the over-represented members' attack scores against the non-members', with its interval; with one
    such person it is the share of non-members that person outscores. None when no member is over-represented."""
    if len(member_scores) == 0:
        return None
    y = np.concatenate([np.ones(len(member_scores), np.int64), np.zeros(len(nonmember_scores), np.int64)])
    x = np.concatenate([member_scores, nonmember_scores])
    ci = metrics.membership_intervals(x, y, fprs=(), resamples=s.bootstrap, seed=s.seed)["auc"]
    return {"identities": [int(i) for i in ids], "auc": metrics.roc_auc(x, y), "auc_ci": [ci.low, ci.high],
            "rule": f"training images >= {OVERREP_FACTOR:g} x the median person's"}


def best_matches(gen: torch.Tensor, train: torch.Tensor, train_ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """For each generated face (gen [G, D]) its best score over the training identities (train [N, D]
    with identities train_ids [N]: the max over a person's images), that identity, and the training
    image behind the score: three [G] arrays."""
    best = topk_identities(gen, train, torch.as_tensor(train_ids, device=train.device), k=1, reduce="max")
    best_score, best_id = best.scores[:, 0].cpu().numpy(), best.indices[:, 0].cpu().numpy()
    nearest = topk_cosine(gen, train, k=1).indices[:, 0].cpu().numpy()
    return best_score, best_id, nearest


def _ratio_note(rate: float, chance: float) -> str:
    """Why a leak ratio is not a number (report.json writes it as null): '' when it is one."""
    if chance > 0:
        return ""
    return ("infinite: leaking samples against a chance rate of 0" if rate > 0
            else "undefined: no leaking sample and a chance rate of 0")


def check_published(published: Sequence[str], matcher_names: Sequence[str]) -> None:
    """Every matcher whose published point is asked for has one and is among the audit's matchers."""
    for name in published:
        published_point(name)
        if name not in matcher_names:
            raise ValueError(f"--threshold {name}=published: {name} is not among the audit's matchers "
                             f"({', '.join(matcher_names)}); add --matcher {name}")


def check_calibration(calibration: Calibration, matcher: Matcher, source: str) -> None:
    """A calibration measured another matcher version (other weights, alignment or preprocessing) than
    the one auditing: its thresholds do not apply, so it is refused, naming both versions."""
    if calibration.matcher != matcher.version:
        raise ValueError(f"{source}: calibrated for matcher version {calibration.matcher or '(none recorded)'!r}, "
                         f"but the audit runs {matcher.version!r} (other weights, alignment or preprocessing); "
                         f"calibrate this one with `leakguard matcher calibrate`, or remove the stale file")


def leakage_rows(best_score: np.ndarray, calibration: Calibration, fmrs: Sequence[float], identities: int,
                 images: int, resamples: int = 1000, seed: int = 0, source: str = "") -> list[dict]:
    """One row per FMR: the threshold with its provenance (`source`, and the pairs and people the
    calibration had) and support, the leak rate of best_score [G] with its bootstrap interval, and the
    chance rate of a face of nobody in training among `identities` people (`images` images)."""
    points = [calibration.point(f) for f in fmrs]
    ci = metrics.leak_rate_intervals(best_score, [p.threshold for p in points], resamples=resamples, seed=seed)
    rows = []
    for i, p in enumerate(points):
        chance_lo, chance_hi = metrics.chance_bounds(p.fmr_observed, identities, images)
        rate = metrics.leak_rate(best_score, p.threshold)
        # The rule of today, also for calibration files written under an older one.
        why = why_unsupported(p.fmr, calibration.impostor.pairs_used, calibration.num_identities)
        rows.append({"fmr": p.fmr, "fmr_observed": p.fmr_observed, "threshold": p.threshold,
                     "threshold_source": source, "calibration_identities": calibration.num_identities,
                     "genuine_pairs": calibration.genuine.pairs_used,
                     "impostor_pairs": calibration.impostor.pairs_used,
                     "threshold_ci": p.threshold_ci, "supported": not why, "why_unsupported": why, "leak_rate": rate,
                     "leak_rate_ci": [float(ci.low[i]), float(ci.high[i])], "chance_rate": chance_lo,
                     "chance_rate_bounds": [chance_lo, chance_hi], "ratio": metrics.leak_ratio(rate, chance_lo),
                     "ratio_note": _ratio_note(rate, chance_lo),
                     "leaking_samples": int((best_score >= p.threshold).sum())})
    return rows


def audit_warnings(leakage: list[dict], fallback: bool, identities: int) -> list[str]:
    """What a user must read before trusting the leakage numbers of one matcher."""
    out = []
    if fallback:
        out.append(f"no calibration file: thresholds come from the training set's own pairs ({identities} "
                   f"identities), the same data the leak rates are measured on; calibrate the matcher on other "
                   f"people with `leakguard matcher calibrate` for thresholds that hold on new faces")
    if identities < MIN_IDENTITIES:
        out.append(f"the training set has {identities} identities: chance rates and leak rates rest on few "
                   f"people (at least {MIN_IDENTITIES} make an FMR supportable)")
    out += [f"{row['why_unsupported']}: its leak rate is not a finding" for row in leakage if not row["supported"]]
    return out


def _leakers(best_score: np.ndarray, best_id: np.ndarray, nearest: np.ndarray, threshold: float,
             lowest: float, identities: np.ndarray, s: AuditSettings) -> dict:
    """The identities that leak most at `threshold`, and the best-scoring (generated, training) pairs,
    each saying whether it passes the `lowest` threshold (the largest FMR's) at all."""
    counts = metrics.leak_counts(best_score, best_id, threshold, identities)
    top_ids, top_counts = metrics.top_leakers(identities, counts, s.top_leakers)
    order = np.argsort(-best_score, kind="stable")[:s.top_pairs]
    return {"top_leakers": [{"identity": int(i), "count": int(c)} for i, c in zip(top_ids, top_counts)],
            "top_pairs": [{"generated_index": int(g), "training_index": int(nearest[g]),
                           "identity": int(best_id[g]), "score": float(best_score[g]),
                           "leaks": bool(best_score[g] >= lowest)} for g in order]}


def audit_matcher(inputs: AuditInputs, matcher: Matcher, store: EmbeddingStore, settings: AuditSettings,
                  calibration: Optional[Calibration] = None, calibration_source: str = "",
                  progress: bool = False, best_scores: Optional[dict] = None) -> dict:
    """The report section of one matcher (see module doc); each generated face's best score goes to
    best_scores[matcher name] when a dict is given."""
    s = settings
    train_ids = inputs.training.identities                                        # [N]
    raw = matcher.name in s.published       # the published point reads raw features: embed once, not twice
    train = unit_embeddings(inputs.training, matcher, store, raw, progress)       # [N, D]
    # Search runs where the matcher runs (a GPU when there is one); the store's files are read-only.
    gen = torch.from_numpy(np.array(unit_embeddings(inputs.generated, matcher, store, raw, progress))
                           ).to(matcher.device)                                 # [G, D]
    rr_scores = pair_scores(train, train_ids, max_pairs=s.max_pairs, seed=s.seed)   # R-R pairs, kept for KS
    rr = calibration_from_scores(rr_scores, train.shape, matcher=matcher.version, fmrs=s.fmrs, seed=s.seed)
    if calibration is None:  # the thresholds in use: how far they could move with other people
        rr = with_threshold_intervals(rr, train, train_ids, seed=s.seed)
    cal, source = (calibration, calibration_source) if calibration is not None else (rr, "training set (R-R pairs)")

    train_t = torch.from_numpy(np.array(train)).to(matcher.device)                # [N, D]
    best_score, best_id, nearest = best_matches(gen, train_t, train_ids)          # [G] each
    if best_scores is not None:
        best_scores[matcher.name] = best_score
    identities = np.unique(train_ids)
    leakage = leakage_rows(best_score, cal, s.fmrs, len(identities), len(train_ids), s.bootstrap, s.seed, source)
    mid = len(s.fmrs) // 2  # leak counts per identity at the middle FMR
    section = {
        "version": matcher.version, "embedding_dim": matcher.embedding_dim, "threshold_source": source,
        "rr": {"genuine": _summary(rr.genuine), "impostor": _summary(rr.impostor), "eer": rr.eer},
        "rg": {"best_scores_histogram": metrics.histogram(best_score)[0].tolist(), "mean": float(best_score.mean()),
               "ks_vs_genuine": metrics.ks_statistic(best_score, rr_scores.genuine),
               "ks_vs_impostor": metrics.ks_statistic(best_score, rr_scores.impostor)},
        "hist_edges": metrics.histogram(best_score)[1].tolist(),
        "leakage": leakage,
        "warnings": audit_warnings(leakage, calibration is None, len(identities)),
        "leak_counts_fmr": s.fmrs[mid],
        **_leakers(best_score, best_id, nearest, leakage[mid]["threshold"], min(r["threshold"] for r in leakage),
                   identities, s),
        "membership": None,
    }
    _name_pairs(section, inputs)
    section["published"] = (published_leakage(inputs, matcher, store, s, progress)
                            if matcher.name in s.published else None)
    if inputs.members is not None and inputs.nonmembers is not None:
        section["membership"] = membership_section(store.embeddings(inputs.members, matcher, progress),
                                                   inputs.members.identities,
                                                   store.embeddings(inputs.nonmembers, matcher, progress),
                                                   inputs.nonmembers.identities, gen, s, overrepresented(train_ids))
    return section


def unit_embeddings(images, matcher: Matcher, store: EmbeddingStore, from_raw: bool, progress: bool = False):
    """[N, D] unit embeddings of `images`; with `from_raw`, normalised from the cached raw features (as
    Matcher.embed normalises them), so a slow matcher such as dlib embeds each image once."""
    if not from_raw:
        return store.embeddings(images, matcher, progress)
    raw = torch.from_numpy(np.array(store.embeddings(images, RawFeatures(matcher), progress)))
    return torch.nn.functional.normalize(raw, dim=1).numpy()


def published_leakage(inputs: AuditInputs, matcher: Matcher, store: EmbeddingStore, s: AuditSettings,
                      progress: bool = False) -> dict:
    """The leak rate at the matcher's published operating point, applied as its source states it: a
    generated face leaks when its raw features lie within `value` of any training image's."""
    point = published_point(matcher.name)
    raw = RawFeatures(matcher)
    train = torch.from_numpy(np.array(store.embeddings(inputs.training, raw, progress)))      # [N, D]
    gen = torch.from_numpy(np.array(store.embeddings(inputs.generated, raw, progress)))      # [G, D]
    score = -nearest_distances(gen, train).numpy()            # [G]: larger is closer, as leak rates expect
    ci = metrics.leak_rate_intervals(score, [-point.value], resamples=s.bootstrap, seed=s.seed)
    return {"rule": f"Euclidean distance of raw features <= {point.value:g}", "value": point.value,
            "source": point.source, "leak_rate": metrics.leak_rate(score, -point.value),
            "leak_rate_ci": [float(ci.low[0]), float(ci.high[0])],
            "leaking_samples": int((score >= -point.value).sum()), "nearest_distance_mean": float(-score.mean())}


def _name_pairs(section: dict, inputs: AuditInputs) -> None:
    """Names a reader recognises beside the indices: file names or seeds, and the identities' names."""
    names = inputs.training.identity_names
    for t in section["top_pairs"]:
        t["generated_name"] = inputs.generated.label(t["generated_index"])
        t["training_name"] = inputs.training.label(t["training_index"])
        t["identity_name"] = names.get(t["identity"])
    for x in section["top_leakers"]:
        x["name"] = names.get(x["identity"])


def _summary(summary) -> dict:
    return {"pairs_used": summary.pairs_used, "pairs_total": summary.pairs_total, "sampled": summary.sampled,
            "mean": summary.mean, "histogram": list(summary.histogram)}


def face_tests(inputs: AuditInputs, matchers: Sequence[Matcher], extractors: Sequence, store: EmbeddingStore,
               progress: bool = False) -> list[FaceTest]:
    """The manifold test under each fidelity extractor (the training set's features cached in `store`, the
    generated ones not: they change with every generator), then the detector test of each matcher with one."""
    tests = []
    for ex in extractors:
        fake = torch.cat([ex.embed(b) for b in inputs.generated.batches(ex.batch_size)]).numpy()      # [G, D]
        tests.append(in_manifold_test(store.embeddings(inputs.training, ex, progress), fake, ex))
    tests += [detector_test(detected_faces(inputs.generated, m, progress), m)
              for m in matchers if has_detector(m)]
    return tests


def run_audit(inputs: AuditInputs, matchers: Sequence[Matcher], store: Optional[EmbeddingStore] = None,
              settings: Optional[AuditSettings] = None, calibrations: Optional[dict] = None,
              progress: bool = False, extractors: Sequence = (), best_scores: Optional[dict] = None) -> dict:
    """The whole report (a JSON-able dict) for every matcher. `calibrations`: {matcher name:
    (Calibration, where it came from)} for thresholds from independent data. `extractors`: fidelity
    feature extractors (leakguard.fidelity.extractors) whose k-NN manifold tells which fakes are faces.
    Each generated face's best score per matcher goes to best_scores[matcher name] when a dict is given."""
    s = settings or AuditSettings()
    store = store or EmbeddingStore()
    if not matchers:
        raise ValueError("audit: no matchers given; name at least one (e.g. --matcher synth=synth.pt)")
    for name, images in (("generated", inputs.generated), ("training", inputs.training)):
        if len(images) == 0:
            raise ValueError(f"audit: the {name} image set {images!r} is empty")
    inputs.training.identities  # an error naming the file when the training set has no identity labels
    if (inputs.members is None) != (inputs.nonmembers is None):
        raise ValueError("audit: membership needs both --members (held-out images of training identities) "
                         "and --nonmembers (images of people never in training)")
    for images in (inputs.members, inputs.nonmembers):
        if images is not None:
            images.identities
    calibrations = calibrations or {}
    report = {
        "format": FORMAT, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "leakguard_version": "0.1.0",
        "inputs": {"generated": {"source": repr(inputs.generated), "count": len(inputs.generated),
                                 **inputs.generated_info},
                   "training": _describe(inputs.training, True),
                   "members": _describe(inputs.members, True) if inputs.members is not None else None,
                   "nonmembers": _describe(inputs.nonmembers, True) if inputs.nonmembers is not None else None},
        "settings": {"fmrs": list(s.fmrs), "bootstrap": s.bootstrap, "seed": s.seed, "top_k": s.top_k},
        "matchers": {},
    }
    check_published(s.published, [m.name for m in matchers])
    for m in matchers:
        cal, source = calibrations.get(m.name, (None, ""))
        if cal is not None:
            check_calibration(cal, m, source)  # before any embedding is computed
    alignment_notes = {}  # one check per alignment, however many matchers share it
    best = {}
    for m in matchers:
        cal, source = calibrations.get(m.name, (None, ""))
        section = report["matchers"][m.name] = audit_matcher(inputs, m, store, s, cal, source, progress, best)
        alignment = getattr(m, "alignment", None)
        if alignment not in alignment_notes:
            alignment_notes[alignment] = alignment_warning(inputs.training, alignment)
        if alignment_notes[alignment]:
            section["warnings"].append(alignment_notes[alignment])
    # what a release filter with all these matchers would drop (leakguard.filter's rule), per FMR
    report["would_drop"] = [{"fmr": f, **metrics.union_drop(best, {name: sec["leakage"][i]["threshold"]
                                                                  for name, sec in report["matchers"].items()})}
                            for i, f in enumerate(s.fmrs)]
    tests = face_tests(inputs, matchers, extractors, store, progress)
    if tests:
        report["faces"] = faces_section(tests, best, {name: sec["leakage"] for name, sec in report["matchers"].items()},
                                        s.bootstrap, s.seed)
    if best_scores is not None:
        best_scores.update(best)
    return report
