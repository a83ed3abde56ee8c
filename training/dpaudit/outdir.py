"""An audit's --out folder: what an earlier audit left in it, and starting, resuming or replacing an audit
there so that two audits never mix.

    OUT/train.zip              the audited run's data: the base images and the included canaries
    OUT/runs/audited-0/        the audited run, with its own copy of canaries.json (what binds it to its canaries)
    OUT/canaries.json          the canaries, who is in, and what was audited (the config, white-box canaries);
                               written after train.zip and the run folder: the audit exists once it does
    OUT/report.json|html       the scores, bounds and verdicts of the finished audit
    OUT/.replaced/             the audit that --force replaces, set aside until the new run has trained; put
                               back when the new run stops before its first snapshot

    start = plan_start(out, record, force)     # every refusal here, nothing written
    begin(out, start, record, write_zip)       # the old audit set aside (--force), the new one's files
    ... train ...; finish(out) or undo(out, start)

A rerun with the same canaries, flags and config resumes the audited run from its newest intact snapshot;
a run is scored only against the record it was trained with (check_binding).
"""
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from leakguard import run_files
from leakguard.atomic import write_json
from leakguard.folder_lock import LOCK_FILE
from training import rundir
from training.config import changed_keys, flatten

log = logging.getLogger("leakguard.dp_audit")

RUN = "runs/audited-0"          # the audited run, relative to --out
ASIDE = ".replaced"             # the audit --force replaces, until the new one has trained
TRAIN_ZIP = "train.zip"
# Where and how visibly a run trains, not what it computes: they may differ when an audit is resumed.
RUN_KEYS = ("name", "run_dir", "resume", "data.workers", "train.device", "train.progress")
CANARY_KEYS = ("source", "unit", "seed", "m", "images_per_canary", "identity", "included")


@dataclass
class Start:
    kind: str                  # "fresh": an empty --out; "replace": set what is there aside; "resume"
    run_dir: Path
    resume: Path | None = None  # the snapshot a resumed run starts from


def check_writable(out: Path, option: str = "--out") -> None:
    """Refuses a folder this process cannot create or write into (permissions, a read-only file system)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{option} {out}: is a file, not a folder; give a folder to write into")
    here = out
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise NotADirectoryError(f"{option} {out}: {here} is a file, not a folder; give a folder to write into")
    if not os.access(here, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {out}: cannot write into {here} (no write permission, or a read-only file "
                              "system); give a folder you can write into")


def read_record(path: Path) -> dict | None:
    """A canaries.json, or None where there is none; a damaged one is refused, naming it."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not a canary record ({e})") from None
    if not isinstance(record, dict) or any(k not in record for k in CANARY_KEYS):
        raise ValueError(f"{path}: not a canary record (expected the keys {', '.join(CANARY_KEYS)})")
    return record


def audit_runs(out: Path) -> list[Path]:
    runs = out / "runs"
    return sorted(p for p in runs.glob("audited-*") if p.is_dir()) if runs.is_dir() else []


def newest_intact(run_dir: Path) -> Path | None:
    """The newest snapshot of a run that is whole (a kill mid-write leaves a damaged or temporary one)."""
    for snap in reversed(rundir.list_snapshots(run_dir / run_files.CHECKPOINTS)):
        if rundir.damaged(snap) is None:
            return snap
    return None


def trained(run_dir: Path) -> bool:
    """Whether a run holds anything training made (a snapshot or release.pt): what --force is needed to lose."""
    return bool(rundir.list_snapshots(run_dir / run_files.CHECKPOINTS)) or (run_dir / run_files.RELEASE).is_file()


def differences(old: dict, new: dict) -> list[str]:
    """What differs between two canary records: the canaries, the white-box canaries, the broken-DP switch and
    the audited config (its dotted keys, but those of RUN_KEYS)."""
    out = [f"canaries.{k}" for k in CANARY_KEYS if old.get(k) != new.get(k)]
    a, b = old.get("audit"), new["audit"]
    if a is None:
        return out + ["canaries.json was written by an earlier LeakGuard, without the audited config"]
    for key in ("gradient_canaries", "skip_noise"):
        if a.get(key) != b[key]:
            out.append(f"{key} {a.get(key)!r} -> {b[key]!r}")
    fa, fb = flatten(a.get("config") or {}), flatten(b["config"])
    out += [f"{k} {fa.get(k)!r} -> {fb.get(k)!r}" for k in changed_keys(a.get("config") or {}, b["config"], RUN_KEYS)]
    return out


def plan_start(out: Path, record: dict, force: bool) -> Start:
    """How the audit of `record` starts in --out (module doc); every refusal is raised here, before anything is
    written: an --out holding a finished audit, another audit's trained run, or an interrupted run that cannot
    be resumed, without --force."""
    out = Path(out)
    fresh = Start("fresh", out / RUN)
    if not out.is_dir() or not any(p.name != LOCK_FILE for p in out.iterdir()):
        return fresh
    replace = Start("replace", out / RUN)
    try:
        old = read_record(out / run_files.CANARIES)
    except ValueError:
        if not force:
            raise
        old = None
    reports = [p for p in (out / run_files.REPORT_JSON, out / run_files.REPORT_HTML) if p.exists()]
    runs = audit_runs(out)
    if force:
        return replace
    if reports:
        raise FileExistsError(f"--out: {reports[0]} exists: {out} holds a finished audit; pass --force to replace it, "
                              f"--rescore to score it again, or write to another folder")
    kept = [r for r in runs if trained(r)]
    if old is None:
        if kept:
            raise FileExistsError(f"--out {out}: {kept[0]} holds a trained run, but there is no "
                                  f"{run_files.CANARIES} to say what it audits; pass --force to replace it, or write "
                                  "to another folder")
        return replace
    changed = differences(old, record)
    if changed:
        if not kept:
            return replace      # nothing trained yet: nothing is lost
        raise FileExistsError(f"--out {out}: holds an interrupted audit of other canaries or settings ("
                              f"{'; '.join(changed[:4])}); rerun it with its own flags to resume it, pass --force to "
                              "replace it, or write to another folder")
    return resumed(out, old, runs, record)


def resumed(out: Path, old: dict, runs: list[Path], record: dict) -> Start:
    """The interrupted audit of the same canaries and config: its run resumed from its newest intact snapshot."""
    run_dir = out / old["audit"]["run"]
    if any(trained(r) for r in runs if r != run_dir):
        raise FileExistsError(f"--out {out}: holds {len(runs)} audited runs ({', '.join(r.name for r in runs)}); "
                              "an audit has one: pass --force to start it over, or write to another folder")
    if not (run_dir.is_dir() and trained(run_dir)):
        return Start("replace", out / RUN)          # nothing trained yet: start it over
    check_binding(out / run_files.CANARIES, run_dir)
    if record["audit"]["gradient_canaries"]:
        raise FileExistsError(f"--out {out}: {run_dir} was interrupted, and its {record['audit']['gradient_canaries']} "
                              "white-box gradient canaries (--gradient-canaries) were scored in its process, so it "
                              "cannot be resumed; pass --force to start the audit over, or write to another folder")
    if not (out / TRAIN_ZIP).is_file():
        raise FileNotFoundError(f"--out {out}: {out / TRAIN_ZIP}, the interrupted run's data, is gone; pass --force "
                                "to start the audit over")
    snapshot = newest_intact(run_dir)
    if snapshot is None:
        raise FileExistsError(f"--out {out}: {run_dir} was interrupted and has no intact snapshot to resume from; "
                              "pass --force to start the audit over")
    return Start("resume", run_dir, snapshot)


def check_binding(record_path: Path, run_dir: Path) -> None:
    """Refuses to score or resume a run against canaries it was not trained with: the run folder keeps a copy of
    the record it started with (runs of earlier LeakGuard versions have none and are taken as they are)."""
    own = run_dir / run_files.CANARIES
    if own.is_file() and read_record(own) != read_record(record_path):
        raise ValueError(f"{record_path} does not match the canaries {run_dir} was trained with ({own}): the folder "
                         "mixes two audits; rerun the audit with --force to redo it")


def begin(out: Path, start: Start, record: dict, write_zip: Callable[[Path], object]) -> None:
    """Writes a new audit's files (nothing for a resumed one): the earlier audit set aside first (replace),
    then train.zip, the run folder with its copy of the record, and canaries.json last. Stopped midway, it
    leaves --out as it was."""
    if start.kind == "resume":
        log.info("dp-audit: resuming the interrupted audited run %s from %s", start.run_dir, start.resume)
        return
    if start.kind == "replace":
        set_aside(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_zip(out / TRAIN_ZIP)
        start.run_dir.mkdir(parents=True)
        write_json(start.run_dir / run_files.CANARIES, record)
        write_json(out / run_files.CANARIES, record)
    except BaseException:
        undo(out, start)
        raise


def set_aside(out: Path) -> None:
    """Moves the audit in --out (canaries.json first: without it nothing left is scored) into OUT/.replaced/;
    stopped midway, it moves back what it moved."""
    aside = out / ASIDE
    if aside.exists():
        shutil.rmtree(aside)        # an audit an earlier --force replaced, whose replacement then trained
    aside.mkdir()
    try:
        for name in (run_files.CANARIES, run_files.REPORT_JSON, run_files.REPORT_HTML, TRAIN_ZIP):
            if (out / name).exists():
                os.replace(out / name, aside / name)
        if (out / "runs").is_dir():
            (aside / "runs").mkdir()
            for run in audit_runs(out):
                os.replace(run, aside / "runs" / run.name)
    except BaseException:
        restore(out)
        raise
    log.info("dp-audit: set the audit in %s aside (%s) until the new run has trained", out, aside)


def restore(out: Path) -> None:
    """Moves the audit set aside back into --out (canaries.json last)."""
    aside = out / ASIDE
    if not aside.is_dir():
        return
    if (aside / "runs").is_dir():
        (out / "runs").mkdir(exist_ok=True)
        for run in sorted((aside / "runs").glob("audited-*")):
            os.replace(run, out / "runs" / run.name)
    for name in (TRAIN_ZIP, run_files.REPORT_HTML, run_files.REPORT_JSON, run_files.CANARIES):
        if (aside / name).exists():
            os.replace(aside / name, out / name)
    shutil.rmtree(aside)


def undo(out: Path, start: Start) -> None:
    """After a new run stopped before its first snapshot: removes the new audit's files (canaries.json first)
    and puts back the one it replaced, so --out is as it was."""
    if start.kind == "resume" or trained(start.run_dir):
        return
    (out / run_files.CANARIES).unlink(missing_ok=True)
    shutil.rmtree(start.run_dir, ignore_errors=True)
    (out / TRAIN_ZIP).unlink(missing_ok=True)
    if start.kind == "replace":
        restore(out)
    runs = out / "runs"
    if runs.is_dir() and not any(runs.iterdir()):
        runs.rmdir()


def finish(out: Path) -> None:
    """The new run has trained: the audit it replaced is deleted."""
    shutil.rmtree(out / ASIDE, ignore_errors=True)
