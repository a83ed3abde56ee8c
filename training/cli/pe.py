"""Private Evolution: a private image set from a public generator, one vote per person, no training.

The private people vote, each once per iteration, for the nearest member of a population of the public
generator's latents (in the --embedding's space); the vote histogram gets Gaussian noise (sensitivity 1 per
person), candidates below --threshold x sigma drop out, the population is redrawn by the noisy votes and
varied in W by shrinking steps. After --iterations it writes release.pt (the public G_ema, the final latents
and the privacy record), latents.pt, images.zip (a dataset zip: train on it, audit it) and grid.png. The
epsilon is per person at --delta over all iterations (Lin et al. 2024; docs/private_evolution.md). A rerun
with the same --out and settings continues from the last finished iteration.

examples:
  leakguard pe --generator public.pt --data private.zip --embedding synth=synth.pt --epsilon 8 \\
      --iterations 10 --population 1000 --count 2000 --out runs/pe-eps8
  leakguard pe --generator ffhq256.pkl --data people.zip --embedding arcface_torch=backbone.pth --epsilon 1 \\
      --eval-matcher facenet --eval-features inception=inception.pt --out runs/pe-ffhq --device cuda
"""
import argparse
from pathlib import Path

from leakguard.cli.options import check_output_folder, finite_float, parse_features, resolve_device
from training.pe import PESettings, run_pe
from training.pe.inputs import open_inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", required=True, help="the public generator: LeakGuard checkpoint or official pkl")
    p.add_argument("--data", required=True, help="the private people: dataset zip or folder with identities")
    p.add_argument("--embedding", type=parse_features, required=True,
                   help="NAME[=WEIGHTS] the people vote in: a matcher (synth, arcface_torch, ...) or fidelity "
                        "extractor (synthfaces, inception)")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--epsilon", type=finite_float, help="target epsilon per person over all iterations")
    budget.add_argument("--sigma", type=finite_float, help="noise multiplier of each histogram instead")
    p.add_argument("--delta", type=finite_float, default=None, help="default min(1e-5, 0.1 / people)")
    p.add_argument("--accountant", default="rdp", help="rdp (default) or prv")
    p.add_argument("--iterations", type=int, default=10, help="T noisy histograms (default 10)")
    p.add_argument("--population", type=int, default=1000, help="M candidates per iteration (default 1000)")
    p.add_argument("--count", type=int, default=None, help="images of the final set (default: --population)")
    p.add_argument("--threshold", type=finite_float, default=2.0, help="noisy votes below this x sigma count 0")
    p.add_argument("--vote", default="centroid", help="centroid (one vote per person) or images (1/k per image)")
    p.add_argument("--variation", type=finite_float, nargs=2, default=[0.5, 0.05], metavar=("FIRST", "LAST"),
                   help="W-space variation step of the first and the last iteration (default 0.5 0.05)")
    p.add_argument("--trunc", type=finite_float, default=1.0, help="truncation psi of the random latents")
    p.add_argument("--seed", type=int, default=0, help="public randomness (latents, variations, resampling)")
    p.add_argument("--secret-seed", type=int, default=None, help="tests only: a known seed voids the guarantee")
    p.add_argument("--eval-matcher", action="append", default=[], metavar="NAME[=WEIGHTS]",
                   help="audit every iteration's images with it (eval.jsonl; repeatable)")
    p.add_argument("--eval-features", action="append", default=[], metavar="NAME[=PATH]",
                   help="FD/KID/precision/recall of every iteration against the private images (repeatable)")
    p.add_argument("--eval-members", default=None, help="held-out photos of trained people: membership AUC per "
                                                        "iteration (with --eval-nonmembers)")
    p.add_argument("--eval-nonmembers", default=None, help="photos of people never trained on")
    p.add_argument("--fmr", type=finite_float, action="append", default=None, help="FMRs of the audit (default 1e-3)")
    p.add_argument("--cache", default=None, help="embedding cache folder")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", type=Path, required=True, help="the run's folder (a rerun continues it)")


def settings(args) -> PESettings:
    name, path = args.embedding
    return PESettings(generator=args.generator, data=args.data, embedding=name, embedding_path=path,
                      epsilon=args.epsilon, sigma=args.sigma, delta=args.delta, accountant=args.accountant,
                      iterations=args.iterations, population=args.population, count=args.count,
                      threshold=args.threshold, vote=args.vote, variation=tuple(args.variation),
                      truncation_psi=args.trunc, seed=args.seed, secret_seed=args.secret_seed, device=args.device,
                      batch=args.batch, cache=args.cache, eval_matchers=args.eval_matcher,
                      eval_features=args.eval_features, eval_fmrs=tuple(args.fmr or [1e-3]),
                      eval_members=args.eval_members, eval_nonmembers=args.eval_nonmembers)


def run(args) -> None:
    check_output_folder(args.out, "--out")
    s = settings(args)
    inputs = open_inputs(s, resolve_device(args.device))   # every refusal comes before anything is written
    record = run_pe(s, args.out, inputs)
    print(f"wrote {args.out / 'images.zip'} ({s.final_count()} images) and {args.out / 'release.pt'}: epsilon "
          f"{record['epsilon']:.3f} per person at delta {record['delta']:g} over {s.iterations} iterations "
          f"({record['units']} people, sigma {record['sigma']:.4g})")
