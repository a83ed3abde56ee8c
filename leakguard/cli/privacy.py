"""Plan a private run before launching it, and read what a checkpoint's guarantee is.

`epsilon` composes T steps of the Poisson-subsampled Gaussian mechanism (rate q, noise multiplier
sigma) and prints epsilon at delta; `noise` solves for the smallest sigma that stays within a target
epsilon; `show` prints a checkpoint's privacy record (training snapshots and release.pt carry one).
Under LeakGuard's DP training one step is one private D step: q = privacy.expected_batch / units,
T = rounds x privacy.d_steps_per_g.

example:
  leakguard privacy epsilon --sample-rate 0.01 --noise-multiplier 1.0 --steps 1000 --delta 1e-5
  leakguard privacy noise --target-epsilon 3 --sample-rate 0.01 --steps 1000 --delta 1e-5
  leakguard privacy show runs/synthfaces32-dp-0/release.pt
"""
import argparse
import json
import math
from pathlib import Path

from leakguard.cli.options import add_subcommands, finite_float
from leakguard.privacy import ACCOUNTANTS, epsilon, noise_multiplier
from leakguard.privacy.accountants import MAX_SIGMA, MAX_TARGET_EPSILON, MIN_SIGMA
from leakguard.privacy.record import read_privacy_record


def _rate(text: str) -> float:
    q = finite_float(text)
    if not 0 < q <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a sampling rate is in (0, 1]")
    return q


def _positive(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def _sigma(text: str) -> float:
    value = _positive(text)
    if value < MIN_SIGMA:
        raise argparse.ArgumentTypeError(f"{text!r}: sigma must be at least {MIN_SIGMA:g} (with less noise epsilon "
                                         "is beyond any meaning)")
    if value > MAX_SIGMA:
        raise argparse.ArgumentTypeError(f"{text!r}: sigma must be at most {MAX_SIGMA:g} (with more noise epsilon "
                                         "is 0 to any precision)")
    return value


def _target(text: str) -> float:
    value = _positive(text)
    if value > MAX_TARGET_EPSILON:
        raise argparse.ArgumentTypeError(f"{text!r}: a target epsilon above {MAX_TARGET_EPSILON} bounds nothing "
                                         f"(a likelihood ratio of e^{MAX_TARGET_EPSILON}); give one up to "
                                         f"{MAX_TARGET_EPSILON}")
    return value


def _delta(text: str) -> float:
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: delta is in (0, 1)")
    return value


def _steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of steps") from None
    if not 1 <= value <= 10 ** 9:
        raise argparse.ArgumentTypeError(f"{text!r}: steps must be between 1 and 10^9")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample-rate", "-q", type=_rate, required=True, help="Poisson sampling rate q in (0, 1]")
    p.add_argument("--steps", "-T", type=_steps, required=True, help="number of steps T")
    p.add_argument("--delta", type=_delta, required=True, help="delta in (0, 1), below 1 / number of units")
    p.add_argument("--accountant", choices=list(ACCOUNTANTS), default="rdp", help="rdp (default) or prv")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_epsilon_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--noise-multiplier", "-s", type=_sigma, required=True,
                   help=f"sigma: noise std / clip norm, {MIN_SIGMA:g} to {MAX_SIGMA:g}")
    _common(p)


def run_epsilon(args) -> None:
    """epsilon at delta after T steps of the subsampled Gaussian mechanism."""
    eps = epsilon([(args.noise_multiplier, args.sample_rate, args.steps)], args.delta, args.accountant)
    out = {"epsilon": eps, "delta": args.delta, "noise_multiplier": args.noise_multiplier,
           "sample_rate": args.sample_rate, "steps": args.steps, "accountant": args.accountant}
    print(json.dumps(out) if args.json else f"epsilon = {eps:.4f} at delta = {args.delta:g} ({args.accountant}: "
          f"sigma {args.noise_multiplier:g}, q {args.sample_rate:g}, {args.steps} steps)")


def add_noise_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-epsilon", "-e", type=_target, required=True,
                   help=f"epsilon to stay within, up to {MAX_TARGET_EPSILON}")
    _common(p)


def run_noise(args) -> None:
    """The smallest noise multiplier sigma that keeps T steps within a target epsilon."""
    sigma = noise_multiplier(args.target_epsilon, args.sample_rate, args.steps, args.delta, args.accountant)
    eps = epsilon([(sigma, args.sample_rate, args.steps)], args.delta, args.accountant)
    out = {"noise_multiplier": sigma, "epsilon": eps, "target_epsilon": args.target_epsilon, "delta": args.delta,
           "sample_rate": args.sample_rate, "steps": args.steps, "accountant": args.accountant}
    print(json.dumps(out) if args.json else f"sigma = {sigma:.4f} (epsilon {eps:.4f} <= {args.target_epsilon:g} at "
          f"delta {args.delta:g}, {args.accountant}, q {args.sample_rate:g}, {args.steps} steps)")


def add_show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="release.pt, a snapshot, or any LeakGuard checkpoint")
    p.add_argument("--json", action="store_true", help="print the record as JSON")


def run_show(args) -> None:
    """Print a checkpoint's privacy record: unit, epsilon, delta, sigma, q, steps, what it covers."""
    record = read_privacy_record(args.checkpoint)
    if record is None:
        print(json.dumps({"privacy": None}) if args.json else
              f"{args.checkpoint}: no privacy record (trained without DP, privacy.unit=none): no guarantee")
        return
    if args.json:
        print(json.dumps(record, indent=2))
        return
    eps = record["epsilon"]
    print(f"{args.checkpoint}: ({eps:.4f}, {record['delta']:.3g})-DP per {record['unit']}" if math.isfinite(eps)
          else f"{args.checkpoint}: epsilon is not finite")
    if record.get("method"):       # a record not of DP-SGD (Private Evolution) names its mechanism
        print(f"  method: {record['method']}")
    for key in ("sigma", "q", "steps", "max_grad_norm", "expected_batch", "max_images_per_identity", "units",
                "accountant", "opacus_version", "secret_seed"):
        if key in record or not record.get("method"):
            print(f"  {key}: {record.get(key)}")
    print("  covers: " + "; ".join(record.get("covers", [])))
    print("  not covered: " + "; ".join(record.get("not_covered", [])))


SUBCOMMANDS = {"epsilon": (add_epsilon_arguments, run_epsilon), "noise": (add_noise_arguments, run_noise),
               "show": (add_show_arguments, run_show)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_subcommands(p, SUBCOMMANDS, "privacy_command", __doc__)


def run(args) -> None:
    SUBCOMMANDS[args.privacy_command][1](args)
