"""Train the face matchers LeakGuard audits with.

`calibrate` measures any matcher on identity-labelled images: thresholds at FMR 1e-2, 1e-3, 1e-4 with
the TAR at each and the EER, written as JSON beside the weights, where `leakguard audit` finds them.

`train` fits a synth matcher (SynthNetA: --arch synth, SynthNetB: --arch synth_b) with the ArcFace loss
on an identity-labelled dataset zip or folder (dataset.json "identities"), and writes a checkpoint that
SynthMatcher / SynthMatcherB load. Train on people the audited generator never saw.

example:
  leakguard synthfaces --out matcher_faces.zip --resolution 64 --identities 300 --identity-offset 100000
  leakguard matcher train --data matcher_faces.zip --arch synth --out synth.pt
  leakguard synthfaces --out calib_faces.zip --resolution 64 --identities 100 --identity-offset 200000
  leakguard matcher calibrate --matcher synth --weights synth.pt --data calib_faces.zip
"""
import argparse
import sys
from pathlib import Path

from leakguard.audit.images import ImageFiles
from leakguard.audit.store import EmbeddingStore
from leakguard.cache_dirs import embeddings_root
from leakguard.cli.options import add_subcommands, check_output_file
from leakguard.identity_data import read_identity_images
from leakguard.matchers.calibrate import MAX_PAIRS, calibrate, calibration_path, save_calibration
from leakguard.matchers.registry import MATCHERS, MatcherConfig, build_matcher, is_known, unknown_message
from leakguard.matchers.threshold_ci import with_threshold_intervals
from leakguard.matchers.nets.synth_nets import ARCHS
from leakguard.matchers.synth_training import TrainSettings, save_checkpoint, train_matcher


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainSettings()
    p.add_argument("--data", type=Path, required=True, help="identity-labelled dataset zip or image folder")
    p.add_argument("--arch", choices=list(ARCHS), required=True, help="synth: SynthNetA, synth_b: SynthNetB")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt); an existing one is kept "
                   "unless --force, which also removes its now stale .calibration.json")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over the data (default {d.epochs})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"images per step (default {d.batch})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW peak learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"(default {d.seed})")
    p.add_argument("--device", default=d.device, help=f"torch device (default {d.device})")
    p.add_argument("--input-size", type=int, default=d.input_size,
                   help=f"px of the network's square input, a multiple of 16 (default {d.input_size})")
    p.add_argument("--embedding-dim", type=int, default=d.embedding_dim, help=f"D (default {d.embedding_dim})")


def run_train(args) -> None:
    """Train a synth matcher on identity-labelled images and write its checkpoint."""
    st = TrainSettings(arch=args.arch, embedding_dim=args.embedding_dim, input_size=args.input_size,
                       epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, device=args.device)
    st.check()  # before reading the data: a bad flag should not wait for it
    check_output_file(args.out, "--out", args.force, inputs=[args.data])
    images, identities = read_identity_images(args.data)
    print(f"{args.data}: {len(images)} images of {len(identities.unique())} people, "
          f"{images.shape[3]}x{images.shape[2]} px")
    net, summary = train_matcher(images, identities, st, data_name=str(args.data))
    save_checkpoint(args.out, net, summary)
    calibration_path(args.out).unlink(missing_ok=True)  # measured the weights just replaced
    print(f"wrote {args.out}: {args.arch}, train accuracy {summary['final_train_accuracy']:.3f}, "
          f"{summary['seconds']:.0f} s")


def add_calibrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--matcher", required=True, metavar="NAME",
                   help=f"one of {', '.join(MATCHERS)}; or any name when --weights is a model file (.onnx, .pt, "
                        ".tflite) with a MODEL.matcher.yaml spec beside it")
    p.add_argument("--weights", help="its weights (file or model pack); the calibration is written beside it")
    p.add_argument("--data", type=Path, required=True, help="identity-labelled images (dataset zip or folder)")
    p.add_argument("--out", type=Path, help="calibration JSON (default: WEIGHTS.calibration.json)")
    p.add_argument("--alignment", choices=["ffhq", "none", "detect"], default=None,
                   help="what the images are (default: the matcher's own)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--batch", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--max-pairs", type=int, default=MAX_PAIRS,
                   help=f"score all pairs up to this many, sample beyond (default {MAX_PAIRS:,})")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sample (default 0)")
    p.add_argument("--cache", type=Path, default=embeddings_root(),
                   help=f"embedding cache (default {embeddings_root()})")


def run_calibrate(args) -> None:
    """Calibrate a matcher: genuine/impostor scores, thresholds at FMR 1e-2/1e-3/1e-4, TAR, EER."""
    if not is_known(args.matcher, args.weights):
        raise ValueError(f"--matcher {args.matcher}: {unknown_message(args.matcher, args.weights)}")
    if args.out is None and (args.weights is None or not Path(args.weights).is_file()):
        raise ValueError("--out is needed when the matcher has no weights file to write the calibration beside")
    m = build_matcher(MatcherConfig(name=args.matcher, weights=args.weights, device=args.device,
                                    batch_size=args.batch, alignment=args.alignment))
    files = ImageFiles(args.data)
    embeddings = EmbeddingStore(args.cache).embeddings(files, m, progress=True)
    cal = calibrate(embeddings, files.identities, matcher=m.version, max_pairs=args.max_pairs, seed=args.seed)
    cal = with_threshold_intervals(cal, embeddings, files.identities, seed=args.seed)
    path = save_calibration(args.out or calibration_path(args.weights), cal)
    for warning in cal.warnings:
        print(f"leakguard matcher calibrate: warning: {warning}", file=sys.stderr)
    for p in cal.points:
        ci = f" [{p.threshold_ci[0]:.4f}, {p.threshold_ci[1]:.4f}]" if p.threshold_ci and None not in p.threshold_ci else ""
        print(f"FMR {p.fmr:g}: threshold {p.threshold:.4f}{ci}, TAR {p.tar:.4f}" + ("" if p.supported else " (unsupported)"))
    print(f"EER {cal.eer:.4f}; {cal.mode}: {cal.genuine.pairs_used:,} genuine and {cal.impostor.pairs_used:,} "
          f"impostor pairs; wrote {path}")


# Subcommand -> (add its arguments, run it).
SUBCOMMANDS = {
    "train": (add_train_arguments, run_train),
    "calibrate": (add_calibrate_arguments, run_calibrate),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_subcommands(p, SUBCOMMANDS, "matcher_command", __doc__)


def run(args) -> None:
    SUBCOMMANDS[args.matcher_command][1](args)
