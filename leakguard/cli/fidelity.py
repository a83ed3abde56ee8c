"""Fidelity of generated images against the training set, per feature extractor: FD, KID and
precision/recall, written to OUT/fidelity.json. FD on `inception` features is the FID papers report;
on a matcher's features it is an identity-space FD and is named fd_<matcher>, never FID. The real
set's features are cached per (image content, extractor version), as the audit's embeddings are.
The `leakguard fidelity` command (training.cli.fidelity) adds sampling a generator.

    fidelity.add_arguments(parser, sources)     # sources: the group --generated joins
    fidelity.run(args)                          # or run(args, make_generated)
"""
import argparse
from pathlib import Path

import numpy as np
import torch

from leakguard.atomic import write_json
from leakguard.audit.images import ImageFiles
from leakguard.audit.store import EmbeddingStore
from leakguard.cache_dirs import embeddings_root
from leakguard.cli.audit import MakeGenerated
from leakguard.cli.options import (check_new_files, check_output_folder, check_writable_folder, parse_features,
                                   resolve_device)
from leakguard.fidelity.extractors import build_extractor, extractor_names
from leakguard.fidelity.scores import fidelity_scores


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"{value}: a seed is a whole number from 0 to 2^32 - 1")
    return value


def check_k(k: int, real: int, fake: int | None) -> None:
    """Precision/recall's balls reach each point's k-th nearest other point of its own set: k must be
    below both set sizes (fake: None while the generated images are not made yet)."""
    fewest = min(real, fake) if fake is not None else real
    if k >= fewest:
        counts = f"{real} real in --training" + (f", {fake} generated" if fake is not None else "")
        raise ValueError(f"--k {k}: each image's ball reaches its k-th nearest other image of its set, so k must be "
                         f"below the number of images in both sets ({counts}); pass --k {max(fewest - 1, 1)} or "
                         "less, or give more images")


def add_arguments(p: argparse.ArgumentParser, sources=None) -> None:
    sources = sources if sources is not None else p.add_mutually_exclusive_group(required=True)
    sources.add_argument("--generated", type=Path, help="folder or zip of generated images")
    p.add_argument("--training", type=Path, required=True, help="the real images (dataset zip or folder)")
    p.add_argument("--features", type=parse_features, action="append", required=True, metavar="NAME[=PATH]",
                   help=f"repeatable; NAME one of {', '.join(extractor_names())} (inception=PATH to "
                        "inception-2015-12-05.pt)")
    p.add_argument("--out", type=Path, required=True, help="folder for fidelity.json")
    p.add_argument("--force", action="store_true", help="replace fidelity.json in --out")
    p.add_argument("--kid-subsets", type=positive, default=100, help="KID subsets (default 100)")
    p.add_argument("--kid-subset-size", type=positive, default=1000, help="KID subset size (default 1000)")
    p.add_argument("--k", type=positive, default=3, help="neighbours for precision/recall (default 3)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch", type=positive, default=64, help="images per forward pass")
    p.add_argument("--cache", type=Path, default=embeddings_root(),
                   help=f"feature cache (default {embeddings_root()})")
    p.add_argument("--seed", type=seed, default=0, help="KID subset seed, 0 to 2^32 - 1 (default 0)")


def run(args, make_generated: MakeGenerated | None = None) -> None:
    """Scores args.generated, or the images `make_generated(device)` returns (called once every
    extractor is built, so a missing weights file fails before any image is rendered)."""
    out = args.out / "fidelity.json"
    check_output_folder(args.out, "--out")
    check_new_files([out], "--out", args.force)
    check_writable_folder(args.out, "--out")
    check_output_folder(args.cache, "--cache")
    device = resolve_device(args.device)
    training = ImageFiles(args.training)
    generated, info = (ImageFiles(args.generated), {}) if make_generated is None else (None, {})
    check_k(args.k, len(training), None if generated is None else len(generated))
    extractors = [build_extractor(name, path, device, args.batch) for name, path in args.features]
    if generated is None:
        generated, info = make_generated(device)
        check_k(args.k, len(training), len(generated))
    store = EmbeddingStore(args.cache)
    results = {}
    for ex in extractors:
        fake = generated_features(generated, ex)
        results[ex.metric_prefix] = fidelity_scores(store.embeddings(training, ex, progress=True), fake, ex,
                                                    args.kid_subsets, args.kid_subset_size, args.k, args.seed)
        r = results[ex.metric_prefix]
        print(f"{ex.metric_prefix}: {r[ex.metric_prefix]:.4f}; kid {r[ex.metric_prefix + '_kid']:.5f} "
              f"± {r[ex.metric_prefix + '_kid_std']:.5f}; precision {r[ex.metric_prefix + '_precision']:.3f}, "
              f"recall {r[ex.metric_prefix + '_recall']:.3f}")
    report = {"inputs": {"training": repr(training), "training_count": len(training),
                         "generated": info or {"images": repr(generated)}, "generated_count": len(generated)},
              "metrics": results,
              "note": "FD is the FID only on inception features; fd_<matcher> is an identity-space FD. These numbers "
                      "read the training images: under differential privacy they are the data holder's view, outside "
                      "the released model's guarantee."}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    print(f"wrote {out}")


def generated_features(images, extractor) -> np.ndarray:
    """Generated images' features [N, D], never cached: the samples change with every checkpoint."""
    return torch.cat([extractor.embed(b) for b in images.batches(extractor.batch_size)]).numpy()
