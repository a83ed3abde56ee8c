"""Release only generated faces that match no training identity, with a report of what was removed.

Candidates are a generator's seeds (a LeakGuard checkpoint or an official StyleGAN2-ADA pickle,
rendered as `leakguard generate` does) or a folder/zip of images. Each is embedded once per --matcher
and dropped when its best score over the training identities reaches the threshold at --fmr under any
of them (the threshold from the matcher's calibration file, else from the training set's own pairs);
rendering goes on with the next seeds until --count images pass or --max-candidates were scored.
--check-matcher names matchers that do not filter: the report says how the kept set fares under
them. An interrupted run continues with --resume, without re-embedding what it scored.

examples:
  leakguard filter --generator runs/synthfaces32-0/checkpoints/snapshot-0000030000.pt --seeds 0- --count 1000 \\
      --training faces.zip --matcher synth=synth.pt --check-matcher synth_b=synth_b.pt --fmr 1e-3 --out release/
  leakguard filter --generated fakes/ --training ffhq256.zip --matcher arcface_torch=backbone.pth \\
      --matcher facenet --dedup --out release/ --device cuda
"""
import argparse
from pathlib import Path
from leakguard.cli import filter as image_filter
from leakguard.cli.options import finite_float
from training.cli.generate import MAX_SEED, parse_seeds
from training.seed_source import SeedSource


def parse_seed_stream(text: str) -> list[int] | range:
    """'100-' -> seeds 100, 101, ... (as many as needed); '0-999' or '1,5,9' -> those seeds."""
    if text.strip().endswith("-") and text.strip()[:-1].strip().isdigit():
        first = int(text.strip()[:-1])
        if first > MAX_SEED:
            raise argparse.ArgumentTypeError(f"{first} is above the largest seed, {MAX_SEED}")
        return range(first, MAX_SEED + 1)
    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--seeds: ")) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    sources = p.add_mutually_exclusive_group(required=True)
    sources.add_argument("--generator", type=Path, help="LeakGuard checkpoint (.pt) or official StyleGAN2-ADA pickle")
    p.add_argument("--seeds", type=parse_seed_stream, default=range(0, MAX_SEED + 1),
                   help="with --generator: 'A-' renders A, A+1, ... as needed (default 0-); or e.g. 0-999")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="with --generator: truncation psi (default 1, none)")
    image_filter.add_arguments(p, sources)


def run(args) -> None:
    if args.generator is None:
        image_filter.run(args)
        return
    if args.count is None:
        raise ValueError("--count: how many images to keep is needed with --generator (e.g. --count 1000)")
    if not args.generator.is_file():
        raise FileNotFoundError(f"--generator {args.generator}: not found (a LeakGuard checkpoint or official pickle)")
    image_filter.run(args, lambda a, device: SeedSource(a.generator, a.seeds, a.trunc, device, a.batch),
                     source_limit=len(args.seeds))
