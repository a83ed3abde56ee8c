"""Audit a generator for identity leakage and identity membership, per face matcher.

The generated faces come from a generator (a LeakGuard checkpoint or an official StyleGAN2-ADA
pickle, sampled by seeds as `leakguard generate` does) or from a folder/zip of images. They are
compared with the training set (a dataset zip or folder whose dataset.json gives identities) under
each --matcher; with --members (held-out images of training people) and --nonmembers (people never
in training) the identity-membership attack is scored too. Writes OUT/report.json and
OUT/report.html. Real training images appear in the report only with --show-training-images.

examples:
  leakguard audit --generator runs/synthfaces32-0/checkpoints/snapshot-0000030000.pt --seeds 0-999 \\
      --training faces.zip --members held_out.zip --nonmembers others.zip --matcher synth=synth.pt --out audit/
  leakguard audit --generated fakes/ --training ffhq256.zip --matcher arcface_torch=backbone.pth \\
      --matcher dlib --out audit/ --device cuda
"""
import argparse
from pathlib import Path

import torch

from leakguard.audit.audit import AuditInputs, AuditSettings, run_audit
from leakguard.audit.images import ImageFiles, ImageTensor
from leakguard.audit.report import write_report
from leakguard.audit.store import DEFAULT_ROOT, EmbeddingStore
from leakguard.matchers.calibrate import calibration_path, load_calibration
from leakguard.matchers.registry import MATCHERS, MatcherConfig, build_matcher
from training.cli.generate import generate, load_generator, parse_seeds, resolve_device


def parse_matcher(text: str) -> tuple[str, str | None]:
    """'synth=synth.pt' -> ('synth', 'synth.pt'); 'dlib' -> ('dlib', None)."""
    name, _, weights = text.partition("=")
    if name not in MATCHERS:
        raise argparse.ArgumentTypeError(f"unknown matcher {name!r}; valid matchers: {', '.join(MATCHERS)}")
    return name, weights or None


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", type=Path, help="LeakGuard checkpoint (.pt) or official StyleGAN2-ADA pickle")
    src.add_argument("--generated", type=Path, help="folder or zip of generated images")
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-999"), help="with --generator (default 0-999)")
    p.add_argument("--trunc", type=float, default=1.0, help="with --generator: truncation psi (default 1, none)")
    p.add_argument("--training", type=Path, required=True, help="the generator's training set, with identities")
    p.add_argument("--members", type=Path, help="held-out images of training identities (with identities)")
    p.add_argument("--nonmembers", type=Path, help="images of identities never in training (with identities)")
    p.add_argument("--matcher", dest="matchers", type=parse_matcher, action="append", required=True,
                   metavar="NAME[=WEIGHTS]", help=f"repeatable; NAME one of {', '.join(MATCHERS)}")
    p.add_argument("--alignment", choices=["ffhq", "none", "detect"], default=None,
                   help="what the images are, for every matcher (default: each matcher's own)")
    p.add_argument("--out", type=Path, required=True, help="folder for report.json and report.html")
    p.add_argument("--show-training-images", action="store_true", help="put real training images in the report")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch", type=int, default=64, help="images per matcher forward pass")
    p.add_argument("--cache", type=Path, default=DEFAULT_ROOT, help=f"embedding cache (default {DEFAULT_ROOT})")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and pair-sampling seed")


def generated_images(args, device) -> tuple[object, dict]:
    if args.generated is not None:
        return ImageFiles(args.generated), {}
    G = load_generator(argparse.Namespace(random_init=False, network=args.generator, which="G_ema"))
    pixels = generate(G, args.seeds, device, trunc=args.trunc, batch=args.batch)  # [N, H, W, C] uint8
    if pixels.shape[3] != 3:
        raise ValueError(f"{args.generator}: the generator makes {pixels.shape[3]}-channel images; matchers need RGB")
    info = {"generator": str(args.generator), "seeds": f"{args.seeds[0]}-{args.seeds[-1]} ({len(args.seeds)})",
            "truncation_psi": args.trunc}
    return ImageTensor(torch.from_numpy(pixels).permute(0, 3, 1, 2), name=str(args.generator)), info


def run(args) -> None:
    device = resolve_device(args.device)
    training = ImageFiles(args.training)
    members = ImageFiles(args.members) if args.members else None
    nonmembers = ImageFiles(args.nonmembers) if args.nonmembers else None
    matchers, calibrations = [], {}
    for name, weights in args.matchers:
        m = build_matcher(MatcherConfig(name=name, weights=weights, device=str(device), batch_size=args.batch,
                                        alignment=args.alignment))
        matchers.append(m)
        if weights is not None and calibration_path(weights).is_file():
            calibrations[name] = (load_calibration(calibration_path(weights)),
                                  f"calibration file {calibration_path(weights)}")
    generated, info = generated_images(args, device)
    inputs = AuditInputs(generated=generated, training=training, members=members, nonmembers=nonmembers,
                         generated_info=info)
    settings = AuditSettings(bootstrap=args.bootstrap, seed=args.seed)
    report = run_audit(inputs, matchers, EmbeddingStore(args.cache), settings, calibrations, progress=True)
    pairs = {name: {"leak_pairs": [(generated.image(p["generated_index"]),
                                    training.image(p["training_index"]) if args.show_training_images else None)
                                   for p in section["top_pairs"]]}
             for name, section in report["matchers"].items()}
    json_path, html_path = write_report(args.out, report, pairs, args.show_training_images)
    for name, section in report["matchers"].items():
        rates = ", ".join(f"{r['leak_rate']:.3f} at FMR {r['fmr']:g}" for r in section["leakage"])
        auc = section["membership"]["auc"] if section["membership"] else None
        print(f"{name}: leak rate {rates}" + (f"; membership AUC {auc:.3f}" if auc is not None else ""))
    print(f"wrote {json_path} and {html_path}")
