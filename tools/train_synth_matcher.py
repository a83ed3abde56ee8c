"""Trains a synth matcher on SynthFaces people and measures it on other, held-out people: the numbers
quoted in docs/matchers.md. Matcher training people start at id 100000, held-out people at 0 (the ids a
generator trained on the default SynthFaces data would show), so the two sets never meet.

    python tools/train_synth_matcher.py --arch synth --resolution 64 --train-ids 300 --test-ids 100 \
        --images-per-id 20 --epochs 20 --out runs/matchers/synth.pt

Prints the training log, then TAR at FMR 1e-2, 1e-3 and 1e-4 over every genuine and impostor pair of
the held-out images, embedded through SynthMatcher (the checkpoint as a user would load it), both by
brute force here and by leakguard.matchers.calibrate, whose calibration is written beside --out.
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from leakguard.identity_data import read_identity_images
from leakguard.matchers.calibrate import calibrate, calibration_path, save_calibration
from leakguard.matchers.synth import SynthMatcher, SynthMatcherB
from leakguard.matchers.synth_training import TrainSettings, save_checkpoint, train_matcher
from training.data.build import export_zip
from training.synthfaces import SynthFaces

MATCHERS = {"synth": SynthMatcher, "synth_b": SynthMatcherB}


def tar_at_fmr(embeddings: torch.Tensor, identities: torch.Tensor, fmrs) -> tuple[dict, int, int]:
    """Brute force over all pairs: the threshold is the impostor score that a fraction fmr of the impostor
    scores exceed; TAR is the fraction of genuine scores above it."""
    scores = embeddings @ embeddings.T                              # [N, N] cosine similarities
    i, j = torch.triu_indices(len(embeddings), len(embeddings), 1)
    pair, same = scores[i, j], identities[i] == identities[j]
    genuine, impostor = pair[same], pair[~same].sort(descending=True).values
    out = {}
    for fmr in fmrs:
        threshold = impostor[int(fmr * len(impostor))]
        out[fmr] = (float((genuine > threshold).float().mean()), float(threshold))
    return out, len(genuine), len(impostor)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=list(MATCHERS), default="synth")
    p.add_argument("--resolution", type=int, default=64, help="px of the SynthFaces images")
    p.add_argument("--input-size", type=int, default=64, help="px of the network's input")
    p.add_argument("--train-ids", type=int, default=300)
    p.add_argument("--test-ids", type=int, default=100)
    p.add_argument("--images-per-id", type=int, default=20)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=TrainSettings.lr)
    p.add_argument("--batch", type=int, default=TrainSettings.batch)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes that render SynthFaces")
    p.add_argument("--out", type=Path, default=None, help="checkpoint to write (default: a temporary file)")
    args = p.parse_args()

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = SynthFaces(args.resolution, args.train_ids, args.images_per_id, identity_offset=100000, seed=0)
        test = SynthFaces(args.resolution, args.test_ids, args.images_per_id, identity_offset=0, seed=0)
        train.render_all(args.workers)
        test.render_all(args.workers)
        export_zip(tmp / "train.zip", train)
        export_zip(tmp / "test.zip", test)
        images, identities = read_identity_images(tmp / "train.zip")
        rendered = time.perf_counter() - start
        print(f"data: {len(images)} training images of {args.train_ids} people, {len(test)} held-out images of "
              f"{args.test_ids} people, {args.resolution} px ({rendered:.0f} s)")

        st = TrainSettings(arch=args.arch, input_size=args.input_size, epochs=args.epochs, lr=args.lr,
                           batch=args.batch, seed=args.seed)
        net, summary = train_matcher(images, identities, st, data_name=train.name)
        out = args.out or tmp / f"{args.arch}.pt"
        save_checkpoint(out, net, summary)
        trained = time.perf_counter() - start - rendered

        matcher = MATCHERS[args.arch](weights=out)
        test_images, test_ids = read_identity_images(tmp / "test.zip")
        e = matcher.embed(test_images)
        results, n_gen, n_imp = tar_at_fmr(e, test_ids, (1e-2, 1e-3, 1e-4))
        cal = calibrate(e, test_ids, matcher=matcher.version)
        if args.out:
            save_calibration(calibration_path(args.out), cal)
    print(f"{args.arch} on {args.test_ids} held-out people: {n_gen} genuine, {n_imp} impostor pairs")
    for fmr, (tar, threshold) in results.items():
        print(f"  FMR {fmr:.0e}: TAR {tar:.4f} (threshold {threshold:.3f}); "
              f"leakguard.matchers.calibrate: TAR {cal.point(fmr).tar:.4f}")
    print(f"  EER {cal.eer:.4f}")
    print(f"torch threads {torch.get_num_threads()}; rendering {rendered:.0f} s, training {trained:.0f} s, "
          f"total {time.perf_counter() - start:.0f} s" + (f"; wrote {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
