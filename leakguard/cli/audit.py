"""Audit generated faces (a folder or zip of images) for identity leakage and identity membership,
per face matcher, against the generator's identity-labelled training set; writes OUT/report.json
and OUT/report.html. The `leakguard audit` command (training.cli.audit) adds sampling a generator.

Which fakes are faces at all (report["faces"], leakguard.audit.faces): always by the face detector of
a matcher that has one (--matcher dlib), and with --features NAME[=PATH] (repeatable, the extractors of
`leakguard fidelity`) by the training images' k-NN manifold in those features; each with the share of
faces and the leak rate among them per matcher and FMR.

    image_audit.add_arguments(parser, sources)     # sources: the group --generated joins
    image_audit.run(args)                          # or run(args, make_generated) for other sources
"""
import argparse
import sys
from pathlib import Path
from typing import Callable

from leakguard import run_files
from leakguard.audit.audit import AuditInputs, AuditSettings, check_published, run_audit
from leakguard.audit.images import ImageFiles
from leakguard.audit.report import write_report
from leakguard.audit.store import EmbeddingStore
from leakguard.cache_dirs import embeddings_root
from leakguard.cli.options import (check_new_files, check_output_folder, parse_features, parse_matcher, parse_published,
                                   resolve_device)
from leakguard.fidelity.extractors import build_extractor, extractor_names
from leakguard.matchers.calibrate import calibration_path, load_calibration
from leakguard.matchers.registry import MATCHERS, MatcherConfig, build_matcher

# device -> (the generated image set, what produced it for the report's inputs)
MakeGenerated = Callable[[object], tuple[object, dict]]


def add_arguments(p: argparse.ArgumentParser, sources=None) -> None:
    """The audit's options; `--generated` joins the mutually exclusive group `sources` when given."""
    sources = sources if sources is not None else p.add_mutually_exclusive_group(required=True)
    sources.add_argument("--generated", type=Path, help="folder or zip of generated images")
    p.add_argument("--training", type=Path, required=True, help="the generator's training set, with identities")
    p.add_argument("--members", type=Path, help="held-out images of training identities (with identities)")
    p.add_argument("--nonmembers", type=Path, help="images of identities never in training (with identities)")
    p.add_argument("--matcher", dest="matchers", type=parse_matcher, action="append", required=True,
                   metavar="NAME[=WEIGHTS]", help=f"repeatable; NAME one of {', '.join(MATCHERS)}, or any "
                   "NAME=MODEL for a model file (.onnx, .pt, .tflite) with a MODEL.matcher.yaml spec")
    p.add_argument("--threshold", dest="published", type=parse_published, action="append", default=[],
                   metavar="NAME=published", help="also report NAME's published operating point (dlib: distance "
                   "0.6), beside the data-derived thresholds; repeatable")
    p.add_argument("--features", dest="extractors", type=parse_features, action="append", default=[],
                   metavar="NAME[=PATH]", help="also say which generated images are faces: those inside the "
                   "training images' k-NN manifold (improved precision's balls, k = 3) in these features, with "
                   f"the leak rates among them; repeatable; NAME one of {', '.join(extractor_names())}")
    p.add_argument("--alignment", choices=["ffhq", "none", "detect"], default=None,
                   help="what the images are, for every matcher (default: each matcher's own)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.json and report.html")
    p.add_argument("--force", action="store_true", help="replace report.json and report.html in --out")
    p.add_argument("--show-training-images", action="store_true", help="put real training images in the report")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch", type=int, default=64, help="images per matcher forward pass")
    p.add_argument("--cache", type=Path, default=embeddings_root(),
                   help=f"embedding cache (default {embeddings_root()})")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and pair-sampling seed")


def build_extractors(args, device) -> list:
    """The --features extractors, built now, so a missing weights file fails before any image is embedded."""
    out = []
    for name, path in args.extractors:
        if path is not None and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"--features {name}={path}: file not found; give the extractor's weights "
                                    f"(`leakguard fidelity --help` lists what each needs)")
        out.append(build_extractor(name, path, device, args.batch))
    return out


def build_matchers(args, device) -> tuple[list, dict]:
    """The --matcher list, and the calibration file found beside each one's weights."""
    matchers, calibrations = [], {}
    for name, weights in args.matchers:
        matchers.append(build_matcher(MatcherConfig(name=name, weights=weights, device=str(device),
                                                    batch_size=args.batch, alignment=args.alignment)))
        if weights is not None and calibration_path(weights).is_file():
            calibrations[name] = (load_calibration(calibration_path(weights)),
                                  f"calibration file {calibration_path(weights)}")
    return matchers, calibrations


def run(args, make_generated: MakeGenerated | None = None) -> None:
    """Audits args.generated, or the images `make_generated(device)` returns (called once the
    matchers are built, so a bad --matcher fails before any image is rendered)."""
    check_output_folder(args.out, "--out")      # before the audit runs, not after
    check_new_files([args.out / run_files.REPORT_JSON, args.out / run_files.REPORT_HTML], "--out", args.force)
    check_output_folder(args.cache, "--cache")
    check_published(args.published, [name for name, _ in args.matchers])
    device = resolve_device(args.device)
    training = ImageFiles(args.training)
    members = ImageFiles(args.members) if args.members else None
    nonmembers = ImageFiles(args.nonmembers) if args.nonmembers else None
    matchers, calibrations = build_matchers(args, device)
    extractors = build_extractors(args, device)
    generated, info = make_generated(device) if make_generated is not None else (ImageFiles(args.generated), {})
    inputs = AuditInputs(generated=generated, training=training, members=members, nonmembers=nonmembers,
                         generated_info=info)
    settings = AuditSettings(bootstrap=args.bootstrap, seed=args.seed, published=tuple(args.published))
    report = run_audit(inputs, matchers, EmbeddingStore(args.cache), settings, calibrations, progress=True,
                       extractors=extractors)
    pairs = {name: {"leak_pairs": [(generated.image(p["generated_index"]),
                                    training.image(p["training_index"]) if args.show_training_images else None)
                                   for p in section["top_pairs"]]}
             for name, section in report["matchers"].items()}
    json_path, html_path = write_report(args.out, report, pairs, args.show_training_images)
    for name, section in report["matchers"].items():
        for warning in section["warnings"]:
            print(f"leakguard audit: warning: {name}: {warning}", file=sys.stderr)
        print(summary_line(name, section))
    for line in faces_lines(report.get("faces") or {}):
        print(line)
    print(f"wrote {json_path} and {html_path}")


def summary_line(name: str, section: dict) -> str:
    """'synth: leak rate 0.107 at FMR 0.001, ...': an unsupported FMR shows no rate, only the marker."""
    rates = ", ".join(f"{r['leak_rate']:.3f} at FMR {r['fmr']:g}" if r["supported"]
                      else f"unsupported at FMR {r['fmr']:g}" for r in section["leakage"])
    auc = section["membership"]["auc"] if section["membership"] else None
    published = section.get("published")
    return (f"{name}: leak rate {rates}"
            + (f"; at the published point ({published['rule']}): {published['leak_rate']:.3f}" if published else "")
            + (f"; membership AUC {auc:.3f}" if auc is not None else ""))


def faces_lines(faces: dict) -> list[str]:
    """'faces by manifold fd_synth: 7 of 12 (58.3%); leak rate among them: synth 0.143 at FMR 0.001, ...'."""
    out = []
    for kind, tests in faces.items():
        for name, e in tests.items():
            rates = "; ".join(f"{m} " + ", ".join(("n/a" if r["leak_rate"] is None else f"{r['leak_rate']:.3f}")
                                                   + f" at FMR {r['fmr']:g}" for r in rows)
                              for m, rows in e["leakage"].items())
            out.append(f"faces by {kind} {name}: {e['count']} of {e['of']} ({100 * e['share']:.1f}%)"
                       + (" - mostly not faces: a low leak rate is no finding" if e["mostly_not_faces"] else "")
                       + (f"; leak rate among them: {rates}" if rates else ""))
    return out
