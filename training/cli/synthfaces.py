"""Write SynthFaces, the procedural faces with known identities, as a dataset zip.

Person i of a seed looks the same in every dataset drawn with that seed; image k of person i too.
Identity ids run from --identity-offset to offset + --identities - 1, so two offsets give disjoint
people (e.g. for training a face matcher apart from the GAN's training set). --overrep-identity gives
one of them --overrep-images images in all. Training needs a power-of-two --resolution (32, 64, ...).

examples:
  leakguard synthfaces --out data/synthfaces64.zip --resolution 64
  leakguard synthfaces --out data/matcher.zip --identities 500 --identity-offset 100000
  leakguard synthfaces --out data/overrep.zip --overrep-identity 7 --overrep-images 400
  leakguard synthfaces --out data/private.zip --population private --identities 4000 --images-per-identity 4
"""
import argparse
import time
from pathlib import Path

from leakguard.cli.options import check_output_file
from training.data.build import export_zip
from training.synthfaces import SynthFaces, check_options

FLAGS = {"resolution": "--resolution", "num_identities": "--identities", "images_per_identity": "--images-per-identity",
         "identity_offset": "--identity-offset", "overrep_identity": "--overrep-identity",
         "overrep_images": "--overrep-images", "seed": "--seed", "population": "--population"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="the dataset zip to write (kept if it exists, unless --force)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--resolution", type=int, default=64, help="image side in px, 32..256 (default 64)")
    p.add_argument("--identities", type=int, default=100, help="number of people (default 100)")
    p.add_argument("--images-per-identity", type=int, default=20, help="images of each person (default 20)")
    p.add_argument("--identity-offset", type=int, default=0, help="id of the first person (default 0)")
    p.add_argument("--overrep-identity", type=int, default=None, help="a person to give --overrep-images images")
    p.add_argument("--overrep-images", type=int, default=0, help="that person's total image count")
    p.add_argument("--seed", type=int, default=0, help="dataset seed, 0 <= seed < 2**32 (default 0)")
    p.add_argument("--population", default="all",
                   help="all (default), public or private: shifted skin tones, hair, beards and glasses "
                        "(docs/synthfaces.md, Populations)")
    p.add_argument("--workers", type=int, default=1, help="processes that render (default 1)")


def run(args: argparse.Namespace) -> None:
    options = dict(resolution=args.resolution, num_identities=args.identities,
                   images_per_identity=args.images_per_identity, identity_offset=args.identity_offset,
                   overrep_identity=args.overrep_identity, overrep_images=args.overrep_images, seed=args.seed,
                   population=args.population)
    check_options(**options, names=FLAGS)
    check_output_file(args.out, "--out", args.force)
    if args.workers < 1:
        raise ValueError(f"--workers {args.workers}: must be >= 1")
    started = time.perf_counter()
    faces = SynthFaces(**options)
    faces.render_all(num_workers=args.workers)
    path = export_zip(args.out, faces)
    last = args.identity_offset + args.identities - 1
    print(f"wrote {path}: {len(faces)} images of {args.identities} identities (ids {args.identity_offset}..{last}), "
          f"{args.resolution}x{args.resolution}, seed {args.seed}, {faces.name}, "
          f"{time.perf_counter() - started:.1f} s")
