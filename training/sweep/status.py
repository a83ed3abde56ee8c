"""`leakguard sweep status DIR`: each trial's state and progress, read live from the trial folders
(trial.json and the last line of stats.jsonl), so it works while trials run here or on a cluster. A trial
marked running whose process on this machine is gone shows as interrupted (a rerun resumes it); a folder
under trials/ without a trial.json is named, not counted."""
import json
from pathlib import Path

from leakguard import run_files
from leakguard.sweep.trial import shown_status, unrecorded
from training.sweep.job import TRIAL_FILE, TRIALS, read_trial

SHOWN = ("done", "running", "interrupted", "pending", "failed")


def _last_stats(folder: Path) -> dict:
    """The newest value of each key among the last lines of stats.jsonl (ticks and evaluations log different keys)."""
    path = folder / run_files.STATS
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 8192))
        lines = [line for line in f.read().splitlines() if line.strip()]
    newest = {}
    for line in lines:
        try:
            newest.update(json.loads(line))
        except ValueError:   # the first (cut) line of the tail, or a line being written
            continue
    return newest


def _last_pe(folder: Path) -> dict:
    """A Private Evolution arm's progress: the iterations done and the epsilon spent (its pe.jsonl)."""
    path = folder / "pe.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return {"iteration": lines[-1]["iteration"], "Privacy/epsilon": lines[-1]["epsilon"]} if lines else {}


def progress(sweep_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((Path(sweep_dir) / TRIALS).glob(f"*/{TRIAL_FILE}")):
        r, stats = read_trial(path.parent), _last_stats(path.parent)
        pe = r.get("pe") is not None   # a Private Evolution arm: iterations, not kimg (pe.jsonl, not stats.jsonl)
        if pe:
            stats = _last_pe(path.parent)
        unit = "it" if pe else "release" if r.get("release") is not None else "kimg"   # a release trains nothing
        rows.append({"name": r["name"], "status": shown_status(r), "unit": unit,
                     "kimg": stats.get("iteration", 0) if pe else stats.get("nimg", 0) / 1000,
                     "budget": r["pe"]["iterations"] if pe else r["kimg"], "epsilon": stats.get("Privacy/epsilon"),
                     "sec_per_kimg": stats.get("Timing/sec_per_kimg"), "error": r.get("error"),
                     "where": r.get("executor") + (f" job {r['job_id']}" if r.get("job_id") else ""),
                     "pid": r.get("pid"), "host": r.get("host"), "recorded": r["status"]})
    return rows


def format_status(sweep_dir: Path) -> str:
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / TRIALS).is_dir():
        raise FileNotFoundError(f"{sweep_dir}: not a sweep folder (no {TRIALS}/); start one with "
                                "`leakguard sweep run SPEC --out DIR`")
    rows = progress(sweep_dir)
    counts = {s: sum(r["status"] == s for r in rows) for s in SHOWN}
    width = max([len(r["name"]) for r in rows] + [5])
    lines = [f"{sweep_dir}: {len(rows)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n or
                                                              s != "interrupted"),
             f"{'trial':<{width}}  {'status':<11} {'kimg':>13}  {'epsilon':>8}  {'s/kimg':>7}  where"]
    for r in rows:
        eps = "-" if r["epsilon"] is None else f"{r['epsilon']:.3g}"
        speed = "-" if r["sec_per_kimg"] is None else f"{r['sec_per_kimg']:.1f}"
        done = "release" if r["unit"] == "release" else f"{r['kimg']:g}/{r['budget']:g}" + (
            " it" if r["unit"] == "it" else "")
        lines.append(f"{r['name']:<{width}}  {r['status']:<11} {done:>13}  {eps:>8}  {speed:>7}  {r['where']}")
        if r["status"] == "interrupted" and r["recorded"] == "running":
            lines.append(f"{'':<{width}}  its process (pid {r['pid']} on {r['host']}) is gone; `leakguard sweep run` "
                         "resumes it from its snapshot")
        elif r["status"] in ("failed", "interrupted") and r["error"]:
            lines.append(f"{'':<{width}}  error: {r['error'].splitlines()[0][:200]}")
    lines += [f"warning: {folder}: no {TRIAL_FILE}, not counted (not a trial this sweep planned, or its record is "
              "gone)" for folder in unrecorded(sweep_dir)]
    return "\n".join(lines)
