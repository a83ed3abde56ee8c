"""Run folders (runs/<name>-<n>/) and finding the snapshot to resume from."""
import json
import logging
import re
import zipfile
from pathlib import Path

from leakguard import run_files

log = logging.getLogger("leakguard.train")

CHECKPOINTS = run_files.CHECKPOINTS
SNAPSHOT_RE = re.compile(r"^snapshot-(\d{10})\.pt$")


def snapshot_name(nimg: int) -> str:
    return f"snapshot-{nimg:010d}.pt"


def list_snapshots(folder: Path) -> list[Path]:
    """Complete snapshots in `folder`, oldest first (temporary files of interrupted writes are ignored)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := SNAPSHOT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def _runs_named(root: Path, name: str) -> list[tuple[int, Path]]:
    pattern = re.compile(rf"^{re.escape(name)}-(\d+)$")
    if not root.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := pattern.match(p.name)))


def new_run_dir(root: str | Path, name: str) -> Path:
    """Creates runs/<name>-<n> with the next free n."""
    root = Path(root)
    runs = _runs_named(root, name)
    n = runs[-1][0] + 1 if runs else 0
    while True:
        path = root / f"{name}-{n}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:  # another process took it
            n += 1


def resolve_resume(resume: str, root: str | Path, name: str) -> Path:
    """'auto' -> the newest snapshot of the newest run named `name`; a run folder -> its newest
    snapshot; a file -> itself."""
    if resume == "auto":
        skipped = []
        for _, run in reversed(_runs_named(Path(root), name)):
            for snap in reversed(list_snapshots(run / CHECKPOINTS)):
                problem = damaged(snap)
                if problem is None:
                    for bad, why in skipped:
                        log.warning("resume=auto: skipped %s (%s); resuming from %s", bad, why, snap)
                    return snap
                skipped.append((snap, problem))
        found = "; ".join(f"{p}: {why}" for p, why in skipped)
        raise FileNotFoundError(f"resume=auto: no intact snapshot in any {Path(root) / (name + '-*')}/{CHECKPOINTS}/"
                                + (f" (damaged: {found})" if found else ""))
    path = Path(resume)
    if path.is_dir():
        snaps = list_snapshots(path / CHECKPOINTS) or list_snapshots(path)
        if not snaps:
            raise FileNotFoundError(f"resume={resume}: no snapshot-*.pt in {path} or {path / CHECKPOINTS}")
        return snaps[-1]
    if not path.is_file():
        raise FileNotFoundError(f"resume checkpoint not found: {path}")
    return path


def damaged(snapshot: Path) -> str | None:
    """Why a snapshot file cannot be a complete torch.save zip (None: it looks whole). Cheap: it reads
    the zip's directory, not the tensors."""
    try:
        with zipfile.ZipFile(snapshot) as zf:
            if not zf.namelist():
                return "an empty archive"
    except (zipfile.BadZipFile, OSError) as e:
        return f"not a complete snapshot ({e})"
    return None


def remove_stale_temporaries(folder: Path) -> None:
    """Deletes the temporary files of snapshot writes that were killed midway (called after a write
    succeeded, by the only process that writes snapshots)."""
    for tmp in folder.glob(".snapshot-*.tmp"):
        tmp.unlink(missing_ok=True)


def run_dir_of(snapshot: Path) -> Path | None:
    """The run folder a snapshot belongs to (runs/<name>-<n>/checkpoints/x.pt), or None."""
    if snapshot.parent.name == CHECKPOINTS and (snapshot.parent.parent / run_files.CONFIG).is_file():
        return snapshot.parent.parent
    return None


def trim_stats(run_dir: Path, nimg: int) -> None:
    """Drops stats.jsonl and eval.jsonl lines logged after `nimg`: on resume they are computed again."""
    for stats in (run_dir / run_files.STATS, run_dir / run_files.EVAL):
        if not stats.is_file():
            continue
        keep = [line for line in stats.read_text().splitlines()
                if line.strip() and json.loads(line).get("nimg", 0) <= nimg]
        stats.write_text("".join(line + "\n" for line in keep))


def latest_intact_snapshot(run_dir: Path) -> Path | None:
    """The newest snapshot of a run folder that is intact (a kill mid-write leaves a damaged or temporary one)."""
    for snap in reversed(list_snapshots(Path(run_dir) / CHECKPOINTS)):
        if damaged(snap) is None:
            return snap
    return None
