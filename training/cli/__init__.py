"""The `leakguard` command hub. Each subcommand is a module with `add_arguments(parser)` and
`run(args)`, listed in COMMANDS: the training commands here, the privacy suite's from leakguard.cli
(`audit` through the adapter here that also samples generators). Errors a user can fix print one
line and exit with status 2.

`python -m training.cli ARGS` is `leakguard ARGS`; torchrun starts it for multi-GPU training:

    torchrun --nproc_per_node=K -m training.cli train --config configs/ffhq256.yaml data.path=...
"""
import argparse
import logging
import sys

from leakguard.cli import matcher
from training.cli import audit, convert, dataset, doctor, generate, synthfaces, train
from training.records import CheckpointError

COMMANDS = {
    "generate": generate,
    "convert": convert,
    "train": train,
    "dataset": dataset,
    "synthfaces": synthfaces,
    "matcher": matcher,
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
