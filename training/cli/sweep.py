"""Run a sweep of training runs (a privacy-versus-fidelity ablation) and tabulate it.

A spec in configs/sweeps/ names a base preset, axes of config values (a grid, or zipped), seeds, the
evaluation and each trial's kimg. Every trial is an ordinary training run in DIR/trials/<name>/ that
ends with the in-training evaluation and, under DP, the ledger's epsilon; DIR/results.csv|json and
DIR/report.html (the table, and Pareto plots of privacy against fidelity) are written at the end.
A rerun skips finished trials and resumes interrupted ones from their latest snapshot.

examples:
  leakguard sweep run configs/sweeps/synthfaces32-privacy.yaml $(python tools/demo_data.py --regularizer)
  leakguard sweep run configs/sweeps/ffhq256-privacy.yaml --executor slurm --no-wait data.path=ffhq256.zip
  leakguard sweep status runs/sweeps/synthfaces32-privacy
  leakguard sweep report runs/sweeps/synthfaces32-privacy
"""
import argparse
from pathlib import Path

from leakguard.cli.options import add_subcommands
from training.sweep.spec import EXECUTORS, expand, load_spec


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: need at least 1")
    return value


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="sweep spec (YAML, configs/sweeps/*.yaml)")
    p.add_argument("--out", type=Path, help="sweep folder (default: runs/sweeps/<spec name>)")
    p.add_argument("--executor", choices=EXECUTORS, help="where trials run (default: the spec's executor)")
    p.add_argument("--workers", type=_positive_int, help="local: trials at once (default: the spec's workers)")
    p.add_argument("--no-wait", action="store_true", help="submitit: submit the trials and return")
    p.add_argument("--dry-run", action="store_true", help="list the trials and their overrides, run nothing")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every trial")


def run_run(args) -> None:
    """Plan and run a sweep's unfinished trials, then write its results and report."""
    spec = load_spec(args.spec, args.overrides)
    spec.executor = args.executor or spec.executor
    spec.workers = args.workers or spec.workers
    if args.dry_run:
        for t in expand(spec):
            print(f"{t.name}: " + " ".join(f"{k}={v}" for k, v in t.overrides.items()) + f" train.seed={t.seed}")
        return
    from training.sweep.runner import run_sweep
    out = args.out or Path("runs") / "sweeps" / spec.name
    text = args.spec.read_text() + "".join(f"\n# command-line override: {o}" for o in args.overrides) + \
        f"\n# executor: {spec.executor}, workers: {spec.workers}\n"
    rows = run_sweep(spec, text, out, wait=not args.no_wait)
    done = sum(r["status"] == "done" for r in rows)
    print(f"sweep {spec.name}: {done} of {len(rows)} trials done; results in {out / 'results.csv'}, report in "
          f"{out / 'report.html'}")


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep_dir", type=Path, metavar="DIR", help="sweep folder")


def run_status(args) -> None:
    """Print each trial's state and progress."""
    from training.sweep.status import format_status
    print(format_status(args.sweep_dir))


def run_report(args) -> None:
    """Write results.csv|json and report.html from the trial folders as they are now."""
    from training.sweep.runner import tabulate
    from training.sweep.status import format_status
    format_status(args.sweep_dir)   # refuses a folder that is not a sweep, naming it
    rows = tabulate(args.sweep_dir, args.sweep_dir.name)
    print(f"{len(rows)} trials tabulated: {args.sweep_dir / 'results.csv'}, {args.sweep_dir / 'report.html'}")


SUBCOMMANDS = {"run": (add_run_arguments, run_run), "status": (add_status_arguments, run_status),
               "report": (add_status_arguments, run_report)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_subcommands(p, SUBCOMMANDS, "sweep_command", __doc__)


def run(args) -> None:
    SUBCOMMANDS[args.sweep_command][1](args)
