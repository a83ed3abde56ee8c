"""Build a training dataset zip (StyleGAN2-ADA layout, with identities) from a folder of images.

Layouts:
  flat              every image under --source (a folder or a zip), sorted; int labels and
                    identities of a dataset.json in the source are carried over
  identity-folders  --source/<person>/<images>: identity ids 0..K-1 follow the sorted folder names;
                    the id -> folder name map is written beside the zip as DEST.identities.json
  celeba            --source is CelebA's img_align_celeba/, --celeba-identities its
                    identity_CelebA.txt ('000001.jpg 2880' per line); ids are the file's

Every image is cropped to its largest centred square and resized to --resolution with Lanczos
(--transform center-crop), or must already be square at that size (--transform none). Without
--resolution the first image's side after cropping is used. --celeba-crop first cuts the usual
140x140 face box (left 19, top 40) out of CelebA's aligned 178x218 images.

examples:
  leakguard dataset --source faces/ --dest data/faces64.zip --layout identity-folders --resolution 64
  leakguard dataset --source img_align_celeba --layout celeba --celeba-identities identity_CelebA.txt \\
      --celeba-crop --resolution 64 --dest data/celeba64.zip
"""
import argparse
from pathlib import Path

from leakguard.cli.options import check_output_file
from training.data.build import TRANSFORMS, build_zip, iter_celeba, iter_flat, iter_identity_folders

LAYOUTS = ("flat", "identity-folders", "celeba")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=Path, required=True, help="folder of source images (flat: or a zip)")
    p.add_argument("--dest", type=Path, required=True, help="the dataset zip to write (kept if it exists, unless --force)")
    p.add_argument("--force", action="store_true", help="replace --dest if it exists")
    p.add_argument("--layout", choices=LAYOUTS, default="flat", help="how --source is organised (default flat)")
    p.add_argument("--resolution", type=int, default=None,
                   help="output side in px, a power of two (default: the first image's, after cropping)")
    p.add_argument("--transform", choices=TRANSFORMS, default="center-crop",
                   help="center-crop: crop the centred square, resize with Lanczos; none: sizes must match already")
    p.add_argument("--celeba-identities", type=Path, default=None, help="with --layout celeba: identity_CelebA.txt")
    p.add_argument("--celeba-crop", action="store_true", help="cut the 140x140 face box out of 178x218 CelebA images")
    p.add_argument("--max-images", type=int, default=None, help="stop after writing this many images")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable (and, for celeba, missing) images, counting them, instead of stopping")
    p.add_argument("--xflip", action="store_true",
                   help="also write each image mirrored left-right (same label and identity): twice the images")
    p.add_argument("--grayscale", action="store_true", help="write 1-channel images (default: RGB)")


def run(args: argparse.Namespace) -> None:
    check_output_file(args.dest, "--dest", args.force, inputs=[args.source])
    if args.layout == "celeba" and args.celeba_identities is None:
        raise ValueError("--layout celeba needs --celeba-identities identity_CelebA.txt")
    if args.layout != "celeba" and args.celeba_identities is not None:
        raise ValueError(f"--celeba-identities is only read with --layout celeba, not --layout {args.layout}")
    if args.layout == "flat":
        images = iter_flat(args.source)
    elif args.layout == "identity-folders":
        images = iter_identity_folders(args.source)
    else:
        images = iter_celeba(args.source, args.celeba_identities, skip_missing=args.skip_bad)
    summary = build_zip(images, args.dest, args.resolution, args.transform, args.skip_bad,
                        celeba_crop=args.celeba_crop, max_images=args.max_images, grayscale=args.grayscale,
                        xflip=args.xflip)
    print(summary.line())
