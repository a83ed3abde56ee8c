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

Every check runs before anything is written. A rerun with the same flags into an --out whose audit was
interrupted resumes its run from the newest snapshot (not with --gradient-canaries, whose scores live in the
process); --force replaces the audit in --out, the old one kept aside until the new run has trained.

examples:
  leakguard dp-audit --config configs/synthfaces32-dp-scratch.yaml --canary-count 64 --out dp_audit/
  leakguard dp-audit --config configs/synthfaces32-dp-scratch.yaml --gradient-canaries 1000 --out dp_audit/
  leakguard dp-audit --config configs/synthfaces32.yaml --unit image --canaries my_canaries/ \\
      --matcher synth=synth.pt --out dp_audit/ train.kimg=20
  leakguard dp-audit --rescore --out dp_audit/
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np

from leakguard import run_files
from leakguard.atomic import strict_json
from leakguard.cli.audit import build_matchers
from leakguard.cli.options import parse_matcher, resolve_device
from leakguard.dpaudit.report import write_report
from leakguard.folder_lock import FolderLock
from training.config import load_config, to_dict
from training.dpaudit import outdir
from training.dpaudit.canaries import (MAX_CANARIES, MAX_CANARY_BYTES, Canaries, canary_record, folder_canaries,
                                       inclusion, read_canaries, synthfaces_canaries)
from training.dpaudit.run import audit_run, base_data, d_parameters, rescore, unscorable
from training.stop import TrainingStopped

MAX_SEED = 2 ** 32           # --canary-seed: SynthFaces draws its people from seeds in [0, 2^32)
MAX_FAKES = 100_000          # --fakes: rendered and embedded in memory for the release score


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="the training preset audited (configs/*.yaml)")
    p.add_argument("--canaries", default="synthfaces", help="synthfaces (made to stand out; default) or a folder "
                   "of canary images (unit=image) or of people with identities (unit=identity)")
    p.add_argument("--canary-count", type=int, default=64, help=f"SynthFaces canaries m (default 64, at most "
                   f"{MAX_CANARIES})")
    p.add_argument("--canary-images", type=int, default=4, help="images per SynthFaces canary person (unit=identity)")
    p.add_argument("--canary-seed", type=int, default=0, help="seed of the canaries and of who is included")
    p.add_argument("--unit", choices=["image", "identity"], default=None,
                   help="canary unit for a run without DP (default: the config's privacy.unit)")
    p.add_argument("--matcher", type=parse_matcher, default=None, metavar="NAME[=WEIGHTS]",
                   help="also score the release: best cosine of generated faces to each canary")
    p.add_argument("--fakes", type=int, default=1000, help="generated faces for the release score (default 1000)")
    p.add_argument("--gradient-canaries", type=int, default=0, metavar="M",
                   help="also M white-box Dirac gradient canaries in D's private step (DP runs; 0 = none; at most "
                        f"{MAX_CANARIES} and D's parameter count)")
    p.add_argument("--out", type=Path, required=True, help="folder for train.zip, canaries.json, the run and the "
                   "report; a rerun with the same flags resumes an interrupted audit there")
    p.add_argument("--force", action="store_true", help="replace the audit in --out (set aside until the new run has "
                   "trained, put back if it stops before its first snapshot)")
    p.add_argument("--rescore", action="store_true", help="score the finished audit in --out again (no training); "
                   "replaces its report")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.kimg=20")


def run(args) -> None:
    """Every check first (the flags, the config, the canaries, what --out holds, the base data), then the
    audit's files, the run and the report, holding --out against a second audit."""
    if args.rescore:
        return run_rescore(args)
    cfg, canaries, included, record, matcher = prepare(args)
    start = outdir.plan_start(args.out, record, args.force)      # what --out holds may refuse: nothing written
    base = None if start.kind == "resume" else base_data(cfg)   # a missing base data file refuses here
    if args.gradient_canaries and base is not None:
        check_gradient_canaries(args.gradient_canaries, cfg, base[0])
    try:
        with FolderLock(args.out, "DP audit folder"):      # a folder it made is removed again when left empty
            start = outdir.plan_start(args.out, record, args.force)   # again, holding it: another audit may have run
            if start.kind != "resume" and base is None:
                base = base_data(cfg)
            report = audit_run(cfg, canaries, included, args.out, start, record, base, matcher, args.fakes,
                               args.gradient_canaries, args.canary_seed, record["audit"]["skip_noise"])
            print_report(args.out, report)
            outdir.finish(args.out)
    except TrainingStopped as e:                 # SIGINT or SIGTERM, after a snapshot: how the audit goes on
        e.args = (f"stopped by {e.signal_name} at {e.nimg / 1000:g} kimg, after writing {e.snapshot}; " +
                  ("its white-box gradient canaries cannot be resumed: rerun with --force to start the audit over"
                   if args.gradient_canaries else "rerun the same `leakguard dp-audit` command to resume the audit"),)
        raise


def prepare(args):
    """The config, the canaries and who is in, canaries.json's record and the matcher, every flag checked;
    nothing written."""
    if args.config is None:
        raise ValueError("--config: the training preset to audit is required (or --rescore an audit in --out)")
    cfg = load_config(args.config, args.overrides)
    unit = cfg.privacy.unit if cfg.privacy.unit != "none" else (args.unit or "image")
    if args.unit is not None and cfg.privacy.unit != "none" and args.unit != cfg.privacy.unit:
        raise ValueError(f"--unit {args.unit}: the config's privacy.unit is {cfg.privacy.unit!r}; canaries are "
                         f"units of the guarantee audited")
    k = args.canary_images if unit == "identity" else 1
    check_numbers(args, k, cfg.data.resolution if args.canaries == "synthfaces" else None)
    if args.gradient_canaries and cfg.privacy.unit == "none":
        raise ValueError("--gradient-canaries: white-box canaries live in the private D step; the config trains "
                         "without DP (privacy.unit=none)")
    outdir.check_writable(args.out)
    matcher = None
    if args.matcher is not None:
        device = resolve_device(cfg.train.device)                 # where the audited run trains
        (matcher,), _ = build_matchers(argparse.Namespace(matchers=[args.matcher], batch=64, alignment=None), device)
    canaries = (synthfaces_canaries(args.canary_count, k, cfg.data.resolution, args.canary_seed)
                if args.canaries == "synthfaces" else folder_canaries(Path(args.canaries), unit))
    check_scorable(args, cfg, canaries)
    included = inclusion(len(canaries), args.canary_seed)
    # A known-broken DP step for the audit's check of itself (tools/dp_audit_example.py); read when a run starts.
    skip_noise = os.environ.get("LEAKGUARD_BROKEN_DP") == "skip-noise"
    audit = {"config": to_dict(cfg), "gradient_canaries": args.gradient_canaries, "skip_noise": skip_noise,
             "run": outdir.RUN}
    try:
        record = json.loads(strict_json(canary_record(canaries, included, args.canary_seed, unit, audit)))  # as read
    except ValueError as e:
        raise ValueError(f"--config {args.config}: canaries.json records the audited config as strict JSON, and "
                         f"this one holds a value that is not a finite number ({e})") from None
    return cfg, canaries, included, record, matcher


def check_numbers(args, k: int, resolution: int | None) -> None:
    """The flags' numbers, each against what it may be (k images per canary and the resolution of SynthFaces
    canaries bound their memory)."""
    for option, value, least in (("--fakes", args.fakes, 1), ("--canary-count", args.canary_count, 2),
                                 ("--canary-images", args.canary_images, 1),
                                 ("--gradient-canaries", args.gradient_canaries or 2, 2)):
        if value < least:
            raise ValueError(f"{option} {value}: must be at least {least}")
    for option, value in (("--canary-count", args.canary_count), ("--gradient-canaries", args.gradient_canaries)):
        if value > MAX_CANARIES:
            raise ValueError(f"{option} {value}: at most {MAX_CANARIES} (the one-run bound's cost grows with the "
                             "number of canaries; audits use hundreds to a few thousand)")
    if args.fakes > MAX_FAKES:
        raise ValueError(f"--fakes {args.fakes}: at most {MAX_FAKES} (the release score renders and embeds them all "
                         "in memory; 1,000-10,000 resolve a canary's best match)")
    if not 0 <= args.canary_seed < MAX_SEED:
        raise ValueError(f"--canary-seed {args.canary_seed}: must be in [0, 2**32)")
    if resolution is not None:
        size = args.canary_count * k * resolution ** 2 * 3      # uint8 bytes of every canary image
        if size > MAX_CANARY_BYTES:
            raise ValueError(f"--canary-count {args.canary_count} x --canary-images {k}: {size / 2 ** 30:.1f} GiB of "
                             f"{resolution} px canary images, held in memory; at most {MAX_CANARY_BYTES / 2 ** 30:g} "
                             "GiB: use fewer canaries or images per canary")


def check_scorable(args, cfg, canaries: Canaries) -> None:
    """Before training: D scores each canary's images as one batch, which its minibatch-stddev groups must divide."""
    counts = np.bincount(canaries.unit, minlength=len(canaries)).tolist()
    bad = unscorable(counts, cfg.model.mbstd_group, cfg.model.mbstd_channels)
    if not bad:
        return
    g = cfg.model.mbstd_group
    if args.canaries == "synthfaces":
        raise ValueError(f"--canary-images {counts[0]} with model.mbstd_group={g}: D scores a canary's images as one "
                         f"batch, and its minibatch-stddev groups of {g} must divide it; give --canary-images a "
                         f"multiple of {g} (or at most {g})")
    raise ValueError(f"--canaries {args.canaries}: canary {bad[0]} has {counts[bad[0]]} images, and with "
                     f"model.mbstd_group={g} D scores a canary's images as one batch, which its minibatch-stddev "
                     f"groups of {g} must divide; give each canary a multiple of {g} images (or at most {g})")


def check_gradient_canaries(m: int, cfg, images) -> None:
    """Each white-box canary owns one coordinate of D: at most D's trainable parameter count."""
    n = d_parameters(cfg, images.shape[1], images.shape[3])             # images: uint8 [N, H, W, C]
    if m > n:
        raise ValueError(f"--gradient-canaries {m}: at most {n}, D's trainable parameters under this config (each "
                         "canary owns one coordinate)")


def run_rescore(args) -> None:
    if args.overrides or args.config is not None:
        raise ValueError("--rescore scores the run already in --out: it takes neither --config nor overrides")
    if args.fakes < 1:
        raise ValueError(f"--fakes {args.fakes}: must be at least 1")
    device = resolve_device("auto")
    matcher = None
    if args.matcher is not None:
        (matcher,), _ = build_matchers(argparse.Namespace(matchers=[args.matcher], batch=64, alignment=None), device)
    read_canaries(args.out / run_files.CANARIES)             # an --out without an audit is refused before it is held
    with FolderLock(args.out, "DP audit folder"):
        print_report(args.out, rescore(args.out, matcher, args.fakes, device))


def print_report(out: Path, report: dict) -> None:
    json_path, html_path = write_report(out, report)
    for name, text in report["verdicts"].items():
        print(f"{name}: epsilon lower bound {report['bounds'][name]['epsilon_lower_bound']:.3f}; {text}")
    print(f"wrote {json_path} and {html_path}")
