"""Scoring a set of generated images against the training set, as the evaluation during training does and
Private Evolution does per iteration: the audit of every matcher (leak rates, membership), the fidelity
metrics of every extractor, and the share of fakes that are faces.

    numbers, tags = score_fakes(fakes, training, matchers, extractors, store, settings)
    numbers: {"audit", "would_drop", "fidelity", "faces"} (those that apply); tags: scalar name -> value

These numbers read the training images: whoever logs them states that they are the data holder's view.
"""
from dataclasses import dataclass, field

import torch

from leakguard.audit.audit import AuditInputs, AuditSettings, run_audit
from leakguard.audit.faces import faces_section, manifold_test
from leakguard.audit.images import ImageFiles
from leakguard.audit.scalars import scalars
from leakguard.fidelity.extractors import build_extractor
from leakguard.fidelity.scores import fidelity_scores
from leakguard.matchers.calibrate import calibration_path, load_calibration
from leakguard.matchers.registry import MatcherConfig, build_matcher


@dataclass
class Judges:
    """What scores the fakes: matchers (with their calibrations, name -> (Calibration, source)), fidelity
    extractors, the embedding store, and the optional membership sets."""
    matchers: list
    extractors: list
    store: object
    calibrations: dict = field(default_factory=dict)
    members: object = None
    nonmembers: object = None


def open_judges(matchers: list, extractors: list, store, device, batch: int, members: str | None = None,
                nonmembers: str | None = None) -> Judges:
    """Judges built from (name, weights or None) per matcher and (name, path or None) per extractor, each matcher's
    calibration file (WEIGHTS.calibration.json) when it has one, and the membership sets' paths."""
    built, calibrations = [], {}
    for name, weights in matchers:
        built.append(build_matcher(MatcherConfig(name=name, weights=weights, device=str(device), batch_size=batch)))
        if weights is not None and calibration_path(weights).is_file():
            calibrations[name] = (load_calibration(calibration_path(weights)),
                                  f"calibration file {calibration_path(weights)}")
    return Judges(built, [build_extractor(name, path, device=device, batch_size=batch) for name, path in extractors],
                  store, calibrations, ImageFiles(members) if members else None,
                  ImageFiles(nonmembers) if nonmembers else None)


def audit_numbers(section: dict) -> dict:
    """What a result line keeps of one matcher's audit section: its version, leak rows and membership."""
    keep = ("fmr", "threshold", "threshold_source", "leak_rate", "leak_rate_ci", "chance_rate", "ratio", "supported")
    out = {"version": section["version"],
           "leakage": [{k: row[k] for k in keep} for row in section["leakage"]]}
    m = section["membership"]
    if m is not None:
        out["membership"] = {"auc": m["auc"], "auc_ci": m["auc_ci"]}
        if m.get("overrepresented"):
            o = m["overrepresented"]
            out["membership"]["overrepresented"] = {"identities": o["identities"], "auc": o["auc"],
                                                    "auc_ci": o["auc_ci"]}
    return out


def score_fakes(fakes, training, judges: Judges, settings: AuditSettings, kid_subsets: int = 100,
                generated_info: dict | None = None) -> tuple[dict, dict]:
    """(numbers, scalar tags) of `fakes` (an ImageTensor) against `training` (ImageFiles or ImageTensor with
    identities) under every judge; see the module doc."""
    numbers, tags, best, leakage, detected = {}, {}, {}, {}, {}
    if judges.matchers:
        inputs = AuditInputs(generated=fakes, training=training, members=judges.members,
                             nonmembers=judges.nonmembers, generated_info=generated_info or {})
        report = run_audit(inputs, judges.matchers, judges.store, settings, judges.calibrations, best_scores=best)
        leakage = {name: section["leakage"] for name, section in report["matchers"].items()}
        detected = report.get("faces", {})  # the detector tests of matchers that have one
        numbers["audit"] = {name: audit_numbers(section) for name, section in report["matchers"].items()}
        numbers["would_drop"] = report["would_drop"]  # the release filter's rule over every matcher
        tags.update(scalars(report))
        tags.update({f"Audit/would_drop@{row['fmr']:g}": row["rate"] for row in numbers["would_drop"]})
    fidelity, in_manifold, manifold = {}, {}, []
    for ex in judges.extractors:
        real = judges.store.embeddings(training, ex)
        fake = torch.cat([ex.embed(b) for b in fakes.batches(ex.batch_size)]).numpy()
        scores = fidelity_scores(real, fake, ex, kid_subsets=kid_subsets, seed=0, in_manifold=in_manifold)
        fidelity[ex.metric_prefix] = scores
        manifold.append(manifold_test(in_manifold[ex.metric_prefix], ex, scores["k"]))
        p = ex.metric_prefix
        tags.update({f"Fidelity/{p}": scores[p], f"Fidelity/{p}_kid": scores[f"{p}_kid"],
                     f"Fidelity/{p}_precision": scores[f"{p}_precision"],
                     f"Fidelity/{p}_recall": scores[f"{p}_recall"]})
    if fidelity:
        numbers["fidelity"] = fidelity
    faces = {**faces_section(manifold, best, leakage, settings.bootstrap, settings.seed), **detected}
    if faces:
        numbers["faces"] = faces
    return numbers, tags
