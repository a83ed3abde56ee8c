"""Check a differential-privacy claim empirically: train once with canaries, then bound epsilon from below.

m canary units at the config's privacy unit (single images for privacy.unit=image, people with
--canary-images images each for identity; for a run without DP, --unit says which) are each put into
the training set with probability 1/2 from --canary-seed (recorded in OUT/canaries.json). The run trains
once under --config and the overrides (DP or not) on the base data plus the included canaries
(OUT/train.zip; no evaluation during training, so canary images enter no fidelity reference set). Each
canary is scored on the released D (mean logit over its images, and for SynthFaces canaries that less
the mean over reference images of the same person that no run trains on) and, with --matcher, on the
released G_ema (best cosine of --fakes generated faces to its centroid); the one-run audit of Steinke, Nasr &
Jagielski (2023) turns each score into an epsilon lower bound at 95% confidence, set against the run's
claimed epsilon. For DP runs, --gradient-canaries M adds M white-box canaries: Dirac gradients that
join D's private step as units (sampled at q, norm C), scored on the released noisy gradients, the
strongest check of the noise and clipping code. Writes OUT/report.json and OUT/report.html. --rescore scores a finished audit in OUT
again without training (for scores added since; --config is then not needed).

examples:
  leakguard dp-audit --config configs/synthfaces32-dp.yaml --canary-count 64 --out dp_audit/
  leakguard dp-audit --config configs/synthfaces32-dp.yaml --gradient-canaries 1000 --out dp_audit/
  leakguard dp-audit --config configs/synthfaces32.yaml --unit image --canaries my_canaries/ \\
      --matcher synth=synth.pt --out dp_audit/ train.kimg=20
  leakguard dp-audit --rescore --out dp_audit/
"""
import argparse
import os
from pathlib import Path

from leakguard import run_files
from leakguard.cli.audit import build_matchers
from leakguard.cli.options import check_new_files, check_output_folder, parse_matcher, resolve_device
from leakguard.dpaudit.report import write_report
from training.config import load_config
from training.dpaudit.canaries import folder_canaries, inclusion, synthfaces_canaries, write_canaries
from training.dpaudit.run import audit_run, rescore


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="the training preset audited (configs/*.yaml)")
    p.add_argument("--canaries", default="synthfaces", help="synthfaces (made to stand out; default) or a folder "
                   "of canary images (unit=image) or of people with identities (unit=identity)")
    p.add_argument("--canary-count", type=int, default=64, help="SynthFaces canaries m (default 64)")
    p.add_argument("--canary-images", type=int, default=4, help="images per SynthFaces canary person (unit=identity)")
    p.add_argument("--canary-seed", type=int, default=0, help="seed of the canaries and of who is included")
    p.add_argument("--unit", choices=["image", "identity"], default=None,
                   help="canary unit for a run without DP (default: the config's privacy.unit)")
    p.add_argument("--matcher", type=parse_matcher, default=None, metavar="NAME[=WEIGHTS]",
                   help="also score the release: best cosine of generated faces to each canary")
    p.add_argument("--fakes", type=int, default=1000, help="generated faces for the release score (default 1000)")
    p.add_argument("--gradient-canaries", type=int, default=0, metavar="M",
                   help="also M white-box Dirac gradient canaries in D's private step (DP runs; 0 = none)")
    p.add_argument("--out", type=Path, required=True, help="folder for train.zip, canaries.json, the run and the report")
    p.add_argument("--force", action="store_true", help="replace report.json and report.html in --out")
    p.add_argument("--rescore", action="store_true", help="score the finished audit in --out again (no training); "
                   "replaces its report")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.kimg=20")


def run(args) -> None:
    if args.rescore:
        return run_rescore(args)
    if args.config is None:
        raise ValueError("--config: the training preset to audit is required (or --rescore an audit in --out)")
    cfg = load_config(args.config, args.overrides)
    unit = cfg.privacy.unit if cfg.privacy.unit != "none" else (args.unit or "image")
    if args.unit is not None and cfg.privacy.unit != "none" and args.unit != cfg.privacy.unit:
        raise ValueError(f"--unit {args.unit}: the config's privacy.unit is {cfg.privacy.unit!r}; canaries are "
                         f"units of the guarantee audited")
    for option, value, least in (("--fakes", args.fakes, 1), ("--canary-count", args.canary_count, 2),
                                 ("--canary-images", args.canary_images, 1),
                                 ("--gradient-canaries", args.gradient_canaries or 2, 2)):
        if value < least:
            raise ValueError(f"{option} {value}: must be at least {least}")
    if args.gradient_canaries and cfg.privacy.unit == "none":
        raise ValueError("--gradient-canaries: white-box canaries live in the private D step; the config trains "
                         "without DP (privacy.unit=none)")
    check_output_folder(args.out, "--out")
    check_new_files([args.out / run_files.REPORT_JSON, args.out / run_files.REPORT_HTML], "--out", args.force)
    matcher = None
    if args.matcher is not None:
        device = resolve_device(cfg.train.device)                 # where the audited run trains
        (matcher,), _ = build_matchers(argparse.Namespace(matchers=[args.matcher], batch=64, alignment=None), device)
    k = args.canary_images if unit == "identity" else 1
    canaries = (synthfaces_canaries(args.canary_count, k, cfg.data.resolution, args.canary_seed)
                if args.canaries == "synthfaces" else folder_canaries(Path(args.canaries), unit))
    included = inclusion(len(canaries), args.canary_seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_canaries(args.out / run_files.CANARIES, canaries, included, args.canary_seed, unit)
    # A known-broken DP step for the audit's check of itself (tools/dp_audit_example.py); read when a run starts.
    skip_noise = os.environ.get("LEAKGUARD_BROKEN_DP") == "skip-noise"
    report = audit_run(cfg, canaries, included, args.out, matcher, args.fakes, args.gradient_canaries,
                       args.canary_seed, skip_noise)
    print_report(args.out, report)


def run_rescore(args) -> None:
    if args.overrides or args.config is not None:
        raise ValueError("--rescore scores the run already in --out: it takes neither --config nor overrides")
    if args.fakes < 1:
        raise ValueError(f"--fakes {args.fakes}: must be at least 1")
    device = resolve_device("auto")
    matcher = None
    if args.matcher is not None:
        (matcher,), _ = build_matchers(argparse.Namespace(matchers=[args.matcher], batch=64, alignment=None), device)
    print_report(args.out, rescore(args.out, matcher, args.fakes, device))


def print_report(out: Path, report: dict) -> None:
    json_path, html_path = write_report(out, report)
    for name, text in report["verdicts"].items():
        print(f"{name}: epsilon lower bound {report['bounds'][name]['epsilon_lower_bound']:.3f}; {text}")
    print(f"wrote {json_path} and {html_path}")
