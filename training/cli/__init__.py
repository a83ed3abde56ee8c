"""The `leakguard` command. Each subcommand is a module with `add_arguments(parser)` and
`run(args)`, listed in COMMANDS; errors a user can fix print one line and exit with status 2."""
import argparse
import logging
import sys

from training.checkpoint import CheckpointError
from leakguard import cli_matcher
from training.cli import audit, convert, dataset, doctor, generate, synthfaces, train

COMMANDS = {
    "generate": generate,
    "convert": convert,
    "train": train,
    "dataset": dataset,
    "synthfaces": synthfaces,
    "matcher": cli_matcher,
    "audit": audit,
    "doctor": doctor,
}

# Errors caused by the user's input: shown as one line, without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, PermissionError, CheckpointError)


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
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command].run(args)
    except USER_ERRORS as e:
        print(f"leakguard {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
