"""Release only generated faces that match no training identity: every candidate is embedded once per
--matcher and dropped when its best score over the training identities reaches the threshold at --fmr
under any of them; the rest are kept (PNG, named by seed or file) until --count pass or the candidates
run out. Writes OUT/kept/, OUT/filter.json (every candidate: best score and nearest identity per
matcher, kept or why not; thresholds with their provenance; counts) and OUT/filter.html. The
`leakguard filter` command (training.cli.filter) adds rendering a generator's seeds.

    image_filter.add_arguments(parser, sources)
    image_filter.run(args)                     # or run(args, make_source) for other candidate sources
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch

from leakguard.audit.images import ImageFiles
from leakguard.audit.store import EmbeddingStore
from leakguard.cache_dirs import embeddings_root
from leakguard.cli.audit import build_matchers
from leakguard.cli.options import check_output_folder, finite_float, parse_matcher, resolve_device
from leakguard.filter.gates import build_gate
from leakguard.filter.page import write_page
from leakguard.filter.run import SETTINGS_FILE, FilterSettings, run_filter
from leakguard.filter.summary import summarize, write_filter_json
from leakguard.matchers.registry import MATCHERS

# (args, device) -> a CandidateSource
MakeSource = Callable[[object, torch.device], object]


def add_arguments(p: argparse.ArgumentParser, sources=None) -> None:
    sources = sources if sources is not None else p.add_mutually_exclusive_group(required=True)
    sources.add_argument("--generated", type=Path, help="folder or zip of candidate images")
    p.add_argument("--training", type=Path, required=True, help="the generator's training set, with identities")
    p.add_argument("--matcher", dest="matchers", type=parse_matcher, action="append", default=[],
                   metavar="NAME[=WEIGHTS]", help=f"filtering matcher, repeatable; NAME one of {', '.join(MATCHERS)}")
    p.add_argument("--check-matcher", dest="check_matchers", type=parse_matcher, action="append", default=[],
                   metavar="NAME[=WEIGHTS]", help="a matcher that does not filter: the report says how the kept "
                   "set fares under it; repeatable")
    p.add_argument("--fmr", type=finite_float, default=1e-3, help="false-match rate of every threshold (default 1e-3)")
    p.add_argument("--count", type=int, default=None,
                   help="stop once this many images are kept (default: all of --generated)")
    p.add_argument("--max-candidates", type=int, default=None,
                   help="stop after scoring this many candidates (default: 10 x --count, or all of --generated)")
    p.add_argument("--dedup", action="store_true", help="also drop a face that matches a face already kept")
    p.add_argument("--out", type=Path, required=True, help="folder for kept/, filter.json and filter.html")
    p.add_argument("--force", action="store_true", help="start over in an --out that holds a filter run")
    p.add_argument("--resume", action="store_true", help="continue the filter run in --out")
    p.add_argument("--show-training-images", action="store_true",
                   help="write the removed images and show the removed pairs (with training images) in filter.html")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch", type=int, default=64, help="candidates per batch and per matcher forward pass")
    p.add_argument("--cache", type=Path, default=embeddings_root(),
                   help=f"embedding cache (default {embeddings_root()})")
    p.set_defaults(alignment=None)


class ImageSetSource:
    """Candidates from a folder or zip of images, in name order, labelled by their file names."""

    def __init__(self, images: ImageFiles):
        self.images, self.limit = images, len(images)
        self.description = {"kind": "images", "path": str(images.path), "fingerprint": images.fingerprint}

    def batches(self, start: int, size: int) -> Iterator[tuple[list[str], torch.Tensor]]:
        for first, pixels in zip(range(start, len(self.images), size), self.images.batches(size, start)):
            yield [Path(n).stem for n in self.images.names[first:first + size]], pixels       # [n, 3, H, W]


def settings_from(args, limit: int | None) -> FilterSettings:
    """--count, --max-candidates and the rest, checked before any work."""
    count = args.count if args.count is not None else limit
    most = args.max_candidates if args.max_candidates is not None else (limit if limit is not None else 10 * count)
    return FilterSettings(fmr=args.fmr, count=count, max_candidates=most, dedup=args.dedup, batch=args.batch,
                          keep_removed=args.show_training_images)


def check_out(args) -> None:
    """An --out with files in it is refused unless it is resumed or started over (one line, exit 2)."""
    check_output_folder(args.out, "--out")
    if args.resume and args.force:
        raise ValueError("--resume and --force: choose one (continue the run in --out, or start over)")
    if args.out.is_dir() and any(args.out.iterdir()) and not (args.force or args.resume):
        raise FileExistsError(f"--out {args.out}: exists and is not empty; pass --resume to continue a filter run "
                              f"there, --force to start over, or name a new folder")
    if args.resume and not (args.out / SETTINGS_FILE).is_file():
        raise FileNotFoundError(f"--resume: {args.out / SETTINGS_FILE} not found; there is no filter run to continue")


def run(args, make_source: MakeSource | None = None, source_limit: int | None = None) -> None:
    """Filters --generated, or the candidates of `make_source(args, device)` (at most `source_limit`; called
    once the matchers and gates are built, so a bad --matcher or --fmr fails before anything renders)."""
    if not args.matchers:
        raise ValueError("no --matcher given; name at least one filtering matcher, e.g. --matcher synth=synth.pt")
    if make_source is None:
        source_limit = len(ImageFiles(args.generated))
    settings = settings_from(args, source_limit)
    check_out(args)
    check_output_folder(args.cache, "--cache")
    device = resolve_device(args.device)
    training, store = ImageFiles(args.training), EmbeddingStore(args.cache)
    gates = _gates(args, args.matchers, device, training, store, True)
    checks = _gates(args, args.check_matchers, device, training, store, False)
    source = make_source(args, device) if make_source is not None else ImageSetSource(ImageFiles(args.generated))
    timings = run_filter(source, gates, checks, settings, args.out, resume=args.resume, force=args.force)
    summary = summarize(args.out, json.loads((args.out / SETTINGS_FILE).read_text()),
                        {g.name: g.provenance for g in gates}, {c.name: c.provenance for c in checks})
    write_filter_json(args.out, summary)
    page = write_page(args.out, summary, training.image if args.show_training_images else None)
    if summary["kept"] < settings.count:
        print(f"leakguard filter: warning: {summary['kept']} kept of the {settings.count} asked for: the candidates "
              f"ran out ({summary['scored']} scored)", file=sys.stderr)
    r = summary["removed"]
    print(f"kept {summary['kept']} of {summary['scored']} candidates; removed {r['count']} "
          f"({100 * (r['rate'] or 0):.1f}% [{100 * r['rate_ci'][0]:.1f}%, {100 * r['rate_ci'][1]:.1f}%]) as training "
          f"likenesses, {summary['near_duplicates']} as near-duplicates ({timings.candidates} scored now)")
    print(f"wrote {args.out / 'kept'}, {args.out / 'filter.json'} and {page}")


def _gates(args, named, device, training, store, filtering: bool) -> list:
    matchers, calibrations = build_matchers(argparse.Namespace(matchers=named, batch=args.batch, alignment=None),
                                            device)
    return [build_gate(m, training, store, args.fmr, calibrations.get(m.name), require_support=filtering)
            for m in matchers]
