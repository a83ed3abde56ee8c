"""The `leakguard` command hub. Each subcommand is a module with `add_arguments(parser)` and
`run(args)`, listed in COMMANDS: the training commands here, the privacy suite's from leakguard.cli
(`audit` through the adapter here that also samples generators). Errors a user can fix print one
line and exit with status 2.

`python -m training.cli ARGS` is `leakguard ARGS`; torchrun starts it for multi-GPU training:

    torchrun --nproc_per_node=K -m training.cli train --config configs/ffhq256.yaml data.path=...
"""
import argparse
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

from leakguard.cli import matcher, privacy, report
from training.cli import audit, convert, dataset, doctor, dp_audit, fidelity, filter, generate, sweep, synthfaces, train
from training.records import CheckpointError

COMMANDS = {
    "generate": generate,
    "convert": convert,
    "train": train,
    "dataset": dataset,
    "synthfaces": synthfaces,
    "matcher": matcher,
    "audit": audit,
    "fidelity": fidelity,
    "filter": filter,
    "dp-audit": dp_audit,
    "sweep": sweep,
    "privacy": privacy,
    "report": report,
    "doctor": doctor,
}

# Errors caused by the user's input: shown as one line, without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, CheckpointError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leakguard",
                                     description="StyleGAN2 training with identity-leakage audits and defences.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra  # KEY=VALUE after an option (`--dry-run name=x`) are overrides too
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        COMMANDS[args.command].run(args)
    except USER_ERRORS as e:
        print(f"leakguard {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - anything else is LeakGuard's bug: say so, keep the traceback
        print(f"leakguard {args.command}: internal error ({type(e).__name__}: {str(e)[:300]}); this is a bug in "
              f"LeakGuard, please report it with the traceback in {write_traceback(args.command)}", file=sys.stderr)
        return 1
    return 0


def write_traceback(command: str) -> Path:
    """The current exception's traceback in a file of its own (the terminal gets one line)."""
    fd, path = tempfile.mkstemp(prefix=f"leakguard-{command}-", suffix=".traceback.txt")
    with os.fdopen(fd, "w") as f:
        traceback.print_exc(file=f)
    return Path(path)
