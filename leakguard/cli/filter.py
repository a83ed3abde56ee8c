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
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch

from leakguard.audit.images import ImageFiles
from leakguard.audit.store import EmbeddingStore
from leakguard.cache_dirs import embeddings_root
from leakguard.cli.audit import build_matchers
from leakguard.cli.options import (check_output_folder, check_writable_folder, finite_float, parse_matcher,
                                   resolve_device)
from leakguard.filter.gates import build_gate
from leakguard.filter.page import write_page
from leakguard.filter.run import CANDIDATES_FILE, SETTINGS_FILE, FilterSettings, read_settings, run_filter
from leakguard.filter.summary import summarize, write_filter_json
from leakguard.matchers.registry import MATCHERS

# (args, device) -> a CandidateSource
MakeSource = Callable[[object, torch.device], object]

# What one run may be asked for: every kept image is a PNG file, every candidate a render, an embedding per
# matcher and a line of candidates.jsonl (days of work at the upper bound).
MAX_COUNT = 10 ** 6           # --count: a million kept images (FFHQ has 70,000)
MAX_CANDIDATES = 10 ** 7      # --max-candidates


def add_arguments(p: argparse.ArgumentParser, sources=None) -> None:
    sources = sources if sources is not None else p.add_mutually_exclusive_group(required=True)
    sources.add_argument("--generated", type=Path, help="folder or zip of candidate images")
    p.add_argument("--training", type=Path, required=True, help="the generator's training set, with identities")
    p.add_argument("--matcher", dest="matchers", type=parse_matcher, action="append", default=[],
                   metavar="NAME[=WEIGHTS]", help=f"filtering matcher, repeatable; NAME one of {', '.join(MATCHERS)}, "
                   "or any NAME=MODEL with a MODEL.matcher.yaml spec")
    p.add_argument("--check-matcher", dest="check_matchers", type=parse_matcher, action="append", default=[],
                   metavar="NAME[=WEIGHTS]", help="a matcher that does not filter: the report says how the kept "
                   "set fares under it; repeatable")
    p.add_argument("--fmr", type=finite_float, default=1e-3, help="false-match rate of every threshold (default 1e-3)")
    p.add_argument("--count", type=int, default=None,
                   help=f"stop once this many images are kept (default: all of --generated; at most {MAX_COUNT:,})")
    p.add_argument("--max-candidates", type=int, default=None,
                   help="stop after scoring this many candidates (default: 10 x --count, or all of --generated; "
                        f"at most {MAX_CANDIDATES:,})")
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


def settings_from(args, limit: int | None, every: bool = True) -> FilterSettings:
    """--count, --max-candidates and the rest, checked before any work. `limit`: the candidates the source
    has; `every`: a finite set (a folder) is scored whole by default, a generator's seeds until 10 x --count."""
    if args.count is not None and args.count > MAX_COUNT:
        raise ValueError(f"--count {args.count}: more than one filter run can render and keep (at most {MAX_COUNT:,}"
                         " images, each a PNG file); ask for fewer, or run several filters on other --seeds into "
                         "other --out folders")
    if args.max_candidates is not None and args.max_candidates > MAX_CANDIDATES:
        raise ValueError(f"--max-candidates {args.max_candidates}: more than one filter run can score (at most "
                         f"{MAX_CANDIDATES:,}); ask for fewer, or run several filters on other --seeds")
    count = args.count if args.count is not None else limit
    if args.max_candidates is not None:
        most = args.max_candidates
    elif every and limit is not None:
        most = limit
    else:
        most = 10 * count if limit is None else min(10 * count, limit)
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
    if args.resume:
        read_settings(args.out)  # a damaged file is named before any work
    check_writable_folder(args.out, "--out")


def run(args, make_source: MakeSource | None = None, source_limit: int | None = None) -> None:
    """Filters --generated, or the candidates of `make_source(args, device)` (at most `source_limit`; called
    once the matchers and gates are built, so a bad --matcher or --fmr fails before anything renders)."""
    if not args.matchers:
        raise ValueError("no --matcher given; name at least one filtering matcher, e.g. --matcher synth=synth.pt")
    if make_source is None:
        source_limit = len(ImageFiles(args.generated))
    settings = settings_from(args, source_limit, every=make_source is None)
    check_out(args)
    check_output_folder(args.cache, "--cache")
    device = resolve_device(args.device)
    training, store = ImageFiles(args.training), EmbeddingStore(args.cache)
    gates = _gates(args, args.matchers, device, training, store, True)
    checks = _gates(args, args.check_matchers, device, training, store, False)
    source = make_source(args, device) if make_source is not None else ImageSetSource(ImageFiles(args.generated))
    timings = run_filter(source, gates, checks, settings, args.out, resume=args.resume, force=args.force)
    summary = summarize(args.out, read_settings(args.out), {g.name: g.provenance for g in gates},
                        {c.name: c.provenance for c in checks})
    write_filter_json(args.out, summary)
    page = write_page(args.out, summary, training.image if args.show_training_images else None)
    if summary["kept"] < settings.count:
        why = ("the candidates ran out" if source_limit is not None and summary["scored"] >= source_limit else
               f"--max-candidates {settings.max_candidates} were scored (default 10 x --count)")
        print(f"leakguard filter: warning: {summary['kept']} kept of the {settings.count} asked for: {why} "
              f"({summary['scored']} scored)", file=sys.stderr)
    if timings.restored:
        print(f"leakguard filter: warning: {timings.restored} image(s) named in {args.out / CANDIDATES_FILE} were "
              f"missing from {args.out} and were rendered again from the source", file=sys.stderr)
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
