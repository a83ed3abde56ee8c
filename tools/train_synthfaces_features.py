"""Trains the `synthfaces` feature extractor on SynthFaces people from id 300000 (disjoint from the demo's
0.., the matchers' 100000.. and calibration's 200000..) and prints its held-out R^2 per render parameter,
measured on the next --test-ids people, through the checkpoint as a user loads it.

    python tools/train_synthfaces_features.py --resolution 32 --train-ids 2000 --images-per-id 2 \
        --out ~/.cache/leakguard/fidelity/synthfaces-32.pt

Then `leakguard fidelity --features synthfaces=PATH ...` reports fd_synthfaces.
"""
import argparse
import dataclasses
import time
from pathlib import Path

import torch

from leakguard.fidelity.synth_features import SynthFacesFeatures, save_feature_net
from training.synthfaces import SynthFaces
from training.synthfaces.feature_net import (DEFAULT_IMAGES, DEFAULT_PEOPLE, FEATURE_ID_OFFSET, MAX_INPUT,
                                             default_path, default_settings, group_r2, train_on_synthfaces)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = default_settings(32)
    p.add_argument("--resolution", type=int, default=32, help="px of the SynthFaces images")
    p.add_argument("--input-size", type=int, default=None,
                   help=f"px of the network's input (default: the resolution, at most {MAX_INPUT})")
    p.add_argument("--train-ids", type=int, default=DEFAULT_PEOPLE)
    p.add_argument("--test-ids", type=int, default=200, help="held-out people, the ids after the training ones")
    p.add_argument("--images-per-id", type=int, default=DEFAULT_IMAGES)
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=2, help="processes that render SynthFaces")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="checkpoint to write (default: synthfaces-RES.pt "
                                                         "in the leakguard fidelity cache)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    st = dataclasses.replace(default_settings(args.resolution), width=args.width, epochs=args.epochs,
                             batch=args.batch, lr=args.lr, seed=args.seed)
    if args.input_size:
        st.input_size = args.input_size
    net, summary = train_on_synthfaces(args.resolution, args.train_ids, args.images_per_id, st,
                                       workers=args.workers)
    out = save_feature_net(args.out or default_path(args.resolution), net, summary)
    trained = time.perf_counter() - start

    features = SynthFacesFeatures(out)
    held_out = SynthFaces(args.resolution, args.test_ids, args.images_per_id,
                          identity_offset=FEATURE_ID_OFFSET + args.train_ids)
    r2 = group_r2(features.net, held_out, args.workers)
    print(f"held-out R^2 on {len(held_out)} images of {args.test_ids} people (ids from "
          f"{FEATURE_ID_OFFSET + args.train_ids}); 0 = predicting the mean, 1 = exact:")
    for group, score in r2.items():
        print(f"  {group:<16} {score:7.3f}")
    print(f"wrote {out} ({features.version}, D = {features.embedding_dim}); torch threads "
          f"{torch.get_num_threads()}, rendering + training {trained:.0f} s, total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
