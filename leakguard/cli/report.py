"""`leakguard report RUN_DIR`: RUN_DIR/report.html from the run's in-training evaluations (eval.jsonl):
leakage per matcher and FMR, membership AUC and fidelity over kimg, the latest evaluation's tables,
the config and, for a private run, the privacy record of release.pt (or of the newest snapshot).

An existing report.html is kept unless --force is given.

example:
  leakguard report runs/synthfaces32-0
"""
import argparse
from pathlib import Path

from leakguard import run_files
from leakguard.cli.options import check_output_file
from leakguard.privacy.record import read_privacy_record
from leakguard.run_report import write_run_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run folder (runs/<name>-<n>)")
    p.add_argument("--force", action="store_true", help="replace RUN_DIR/report.html if it exists")


def privacy_record(run_dir: Path) -> dict | None:
    """release.pt's record, else the newest snapshot's, else None (a non-private run)."""
    snapshots = sorted((run_dir / run_files.CHECKPOINTS).glob("snapshot-*.pt"), reverse=True)
    candidates = [run_dir / run_files.RELEASE, *snapshots]
    for path in candidates:
        if path.is_file():
            return read_privacy_record(path)
    return None


def run(args) -> None:
    check_output_file(args.run_dir / run_files.REPORT_HTML, "RUN_DIR", args.force)
    path = write_run_report(args.run_dir, privacy_record(args.run_dir))
    print(f"wrote {path}")
