"""The `leakguard` command hub. Each subcommand is a module with `add_arguments(parser)` and
`run(args)`, listed in COMMANDS: the training commands here, the privacy suite's from leakguard.cli
(`audit` through the adapter here that also samples generators). Errors a user can fix print one
line and exit with status 2; a training run stopped by SIGINT or SIGTERM after its snapshot exits with
75 (training.stop.STOPPED_EXIT), an interrupt anywhere else with 130, both in one line.

`python -m training.cli ARGS` is `leakguard ARGS`; torchrun starts it for multi-GPU training:

    torchrun --nproc_per_node=K -m training.cli train --config configs/ffhq256.yaml data.path=...
"""
import argparse
import errno
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

from leakguard.cli import matcher, privacy, report
from training.cli import (audit, convert, dataset, doctor, dp_audit, fidelity, filter, generate, pe, sweep, synthfaces,
                          train)
from training.records import CheckpointError
from training.stop import STOPPED_EXIT, Stopped

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
    "pe": pe,
    "sweep": sweep,
    "privacy": privacy,
    "report": report,
    "doctor": doctor,
}

# Errors caused by the user's input: shown as one line, without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError, CheckpointError)
# The machine's limits, which the user can act on: a full disk or quota, a read-only file system.
USER_OS_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}


def os_error_line(e: OSError) -> str | None:
    """One line for an OSError the user can fix (names the file), or None for anything else."""
    if e.errno not in USER_OS_ERRNOS:
        return None
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{USER_OS_ERRNOS[e.errno]}; free space or choose another folder, then run it again"


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
    except Stopped as e:
        print(f"leakguard {args.command}: {e}", file=sys.stderr)
        return STOPPED_EXIT
    except KeyboardInterrupt:
        print(f"leakguard {args.command}: interrupted; files written so far are complete (every write is "
              "atomic), a rerun with --resume continues where the command supports it", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # the reader went away (e.g. `| head`): nothing more to say to it
        print(f"leakguard {args.command}: error: the output was closed before it was all written", file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"leakguard {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        line = os_error_line(e)
        if line is None:
            return internal_error(args.command, e)
        print(f"leakguard {args.command}: error: {line}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - anything else is LeakGuard's bug: say so, keep the traceback
        return internal_error(args.command, e)
    return 0


def internal_error(command: str, e: Exception) -> int:
    print(f"leakguard {command}: internal error ({type(e).__name__}: {str(e)[:300]}); this is a bug in "
          f"LeakGuard, please report it with the traceback in {write_traceback(command)}", file=sys.stderr)
    return 1


def write_traceback(command: str) -> Path:
    """The current exception's traceback in a file of its own (the terminal gets one line)."""
    fd, path = tempfile.mkstemp(prefix=f"leakguard-{command}-", suffix=".traceback.txt")
    with os.fdopen(fd, "w") as f:
        traceback.print_exc(file=f)
    return Path(path)
