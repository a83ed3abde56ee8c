"""One sweep trial's row, read from the trial's own folder SWEEP/trials/<name>/: trial.json (written by
the sweep runner), the run's eval.jsonl and stats.jsonl, and release.pt's privacy record.

Metric columns of a row (row["metrics"], the trial's own intervals in row["intervals"]):
  leak@<matcher>@<fmr>   leak rate at that false match rate (fmr as %g), with its interval
  auc@<matcher>          membership AUC, with its interval
  auc_overrep@<matcher>  membership AUC of the over-represented members alone (when the members include one)
  fd@<key>, kid@<key>, kid_std@<key>, precision@<key>, recall@<key>   fidelity, key as in eval.jsonl
  faces@<key>            the share of fakes that are faces by the real k-NN manifold under that extractor
                         (eval.jsonl's faces.manifold; leakguard.audit.faces), with its Wilson interval
  detected@<matcher>     the share of fakes that matcher's face detector finds a face in (faces.detector)
They come from the final evaluation (the eval.jsonl line with the largest nimg), whose kimg is
row["kimg"]; row["kimg_trained"] is how far training went (stats.jsonl). A trial trained
without DP has no release.pt: its epsilon is infinite, the weakest possible guarantee.

Faces: row["face_key"] is the first extractor of the evaluation (the first key of faces.manifold, as
eval.fidelity lists them), row["face_share"] its share of faces, and row["not_faces"] whether that share
is below MIN_FACE_SHARE: such a trial's fakes are mostly not faces, so its low leak rates are no privacy
(None, unknown, when the evaluation has no extractor).
"""
import json
import math
import socket
import statistics
from pathlib import Path

from leakguard import run_files
from leakguard.audit.faces import MIN_FACE_SHARE
from leakguard.folder_lock import alive
from leakguard.privacy.record import read_privacy_record

STATUSES = ("pending", "running", "done", "failed", "interrupted")   # interrupted: stopped with a snapshot, resumable
REQUIRED = ("name", "group", "overrides", "seed", "status")
FIDELITY = (("fd", ""), ("kid", "_kid"), ("kid_std", "_kid_std"), ("precision", "_precision"), ("recall", "_recall"))
OUTSIDE_DP = ("epsilon covers the released networks (release.pt) only: the leak rates, membership AUC and "
              "FD/KID/precision/recall are computed from the training images, so they are outside any DP guarantee")
NO_DP = "trained without DP (no release.pt with a privacy record): no guarantee, epsilon is infinite"


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not strict JSON")


def read_trial(trial_dir: Path) -> dict:
    """trial.json, checked: the keys every row needs and a status the runner writes."""
    path = trial_dir / run_files.TRIAL
    if not path.is_file():
        raise ValueError(f"{path}: missing; every trial folder holds the trial.json its runner wrote")
    try:
        t = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except ValueError as e:  # json.JSONDecodeError is one
        raise ValueError(f"{path}: not strict JSON ({e})") from None
    if not isinstance(t, dict) or any(k not in t for k in REQUIRED):
        raise ValueError(f"{path}: expected a JSON object with the keys {', '.join(REQUIRED)}")
    if t["status"] not in STATUSES:
        raise ValueError(f"{path}: status {t['status']!r} is not one of {', '.join(STATUSES)}")
    if not isinstance(t["seed"], int) or isinstance(t["seed"], bool):
        raise ValueError(f"{path}: seed must be a whole number, got {t['seed']!r}")
    if not isinstance(t["overrides"], dict):
        raise ValueError(f"{path}: overrides must be an object of config keys, got {t['overrides']!r}")
    if t["name"] != trial_dir.name:
        raise ValueError(f"{path}: name {t['name']!r} differs from its folder's name {trial_dir.name!r}")
    return t


def unrecorded(sweep_dir) -> list[Path]:
    """The folders under SWEEP/trials/ without a trial.json (not trials, or their record is gone): the results
    table leaves them out, and what reads it says so."""
    trials = Path(sweep_dir).expanduser() / run_files.TRIALS
    if not trials.is_dir():
        return []
    return sorted(p for p in trials.iterdir() if p.is_dir() and not (p / run_files.TRIAL).is_file())


def read_jsonl(path: Path, key: str = "nimg") -> list[tuple[int, dict]]:
    """(line number, object) per non-blank line; each must be a JSON object with a number `key` (nimg; a
    Private Evolution arm's eval.jsonl: iteration)."""
    if not path.is_file():
        raise ValueError(f"{path}: missing; a finished trial's run writes it")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not a JSON line ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get(key), (int, float)):
            raise ValueError(f"{path}:{n}: expected a JSON object with a number {key!r}")
        out.append((n, obj))
    return out


def _num(x) -> float:
    """A metric as a float; null (a non-finite number written as strict JSON) is NaN."""
    return math.nan if x is None else float(x)


def _interval(ci) -> list[float] | None:
    return [_num(ci[0]), _num(ci[1])] if isinstance(ci, (list, tuple)) and len(ci) == 2 else None


def eval_metrics(line: dict, where: str) -> tuple[dict, dict, dict]:
    """({column: value}, {column: [low, high]}, {fidelity key: extractor name}) of one eval.jsonl line."""
    values, intervals, extractors = {}, {}, {}
    try:
        for matcher, m in (line.get("audit") or {}).items():
            for r in m["leakage"]:
                col = f"leak@{matcher}@{r['fmr']:g}"
                values[col], intervals[col] = _num(r["leak_rate"]), _interval(r.get("leak_rate_ci"))
            if m.get("membership"):
                col = f"auc@{matcher}"
                values[col], intervals[col] = _num(m["membership"]["auc"]), _interval(m["membership"].get("auc_ci"))
                over = m["membership"].get("overrepresented")
                if over:
                    col = f"auc_overrep@{matcher}"
                    values[col], intervals[col] = _num(over["auc"]), _interval(over.get("auc_ci"))
        for key, s in (line.get("fidelity") or {}).items():
            for name, suffix in FIDELITY:
                if name == "fd" or key + suffix in s:  # FD is required; the rest are reported when computed
                    values[f"{name}@{key}"] = _num(s[key + suffix])
            extractors[key] = s.get("extractor")
        faces = line.get("faces") or {}
        for kind, prefix in (("manifold", "faces"), ("detector", "detected")):
            for key, entry in (faces.get(kind) or {}).items():
                col = f"{prefix}@{key}"
                values[col], intervals[col] = _num(entry["share"]), _interval(entry.get("share_ci"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{where}: not an evaluation record ({type(e).__name__}: {e})") from None
    return values, {k: v for k, v in intervals.items() if v is not None}, extractors


def face_share(line: dict) -> dict:
    """{"face_key", "face_share", "not_faces"} of one eval.jsonl line (module doc): the first extractor's."""
    manifold = (line.get("faces") or {}).get("manifold") or {}
    if not manifold:
        return {"face_key": None, "face_share": None, "not_faces": None}
    key = next(iter(manifold))
    share = _num(manifold[key]["share"])
    return {"face_key": key, "face_share": share, "not_faces": None if math.isnan(share) else share < MIN_FACE_SHARE}


def _privacy(trial_dir: Path, final: dict, where: str) -> dict:
    """release.pt's guarantee; a run whose evaluations carry a privacy section must have one."""
    release = trial_dir / run_files.RELEASE
    record = read_privacy_record(release) if release.is_file() else None
    if record is None:
        if final.get("privacy"):
            raise ValueError(f"{release}: no privacy record, though {where} has a privacy section: a private "
                             f"trial's guarantee is read from the release.pt its run writes at the end")
        return {"private": False, "privacy_unit": None, "epsilon": math.inf, "delta": None, "note": NO_DP}
    try:
        return {"private": True, "privacy_unit": record["unit"], "epsilon": _num(record["epsilon"]),
                "delta": _num(record["delta"]), "note": OUTSIDE_DP}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{release}: privacy record without a usable {e}") from None


def _finished(trial_dir: Path, pe: bool = False, release: bool = False) -> dict:
    """The measured part of a done trial's row. A Private Evolution arm (`pe`) counts its evaluations by iteration
    and trains nothing: its row is its last iteration's (the released images), with no kimg and no speed. A
    release arm (`release`) trains nothing either: its one line's kimg is its generator's (0 for a given file)."""
    key = "iteration" if pe else "nimg"
    evals = read_jsonl(trial_dir / run_files.EVAL, key)
    stats = [] if pe or release else read_jsonl(trial_dir / run_files.STATS)
    if not evals:
        raise ValueError(f"{trial_dir / run_files.EVAL}: no evaluation; the sweep needs eval.every_kimg and "
                         "matchers set")
    n, final = max(evals, key=lambda item: (item[1][key], item[0]))  # the last of equal nimg
    where = f"{trial_dir / run_files.EVAL}:{n}"
    metrics, intervals, extractors = eval_metrics(final, where)
    timing = [float(s["Timing/sec_per_kimg"]) for _, s in stats
              if isinstance(s.get("Timing/sec_per_kimg"), (int, float))]
    timing = [t for t in timing if math.isfinite(t)]
    return {**_privacy(trial_dir, final, where), "kimg": None if pe else final["nimg"] / 1000,
            "kimg_trained": max(s["nimg"] for _, s in stats) / 1000 if stats else None,
            "sec_per_kimg": statistics.median(timing) if timing else None,
            "metrics": metrics, "intervals": intervals, "extractors": extractors, **face_share(final)}


def trial_alive(record: dict) -> bool | None:
    """Whether the process of a trial marked running still runs: True or False on this host (its pid, its
    start time where recorded, and a trial's command line), None on another host (it cannot be told here)."""
    if record.get("status") != "running":
        return False
    if record.get("host") != socket.gethostname():
        return None
    holder = {"host": record.get("host"), "pid": record.get("pid"), "started_ticks": record.get("started_ticks")}
    if not alive(holder):
        return False
    try:
        cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes()
    except OSError:             # no /proc to read: the pid lives, so take it as the trial's
        return True
    return b"training.sweep.job" in cmdline or b"submitit" in cmdline


def shown_status(record: dict) -> str:
    """The status to show: a trial marked running whose process on this host is gone was interrupted."""
    return "interrupted" if record["status"] == "running" and trial_alive(record) is False else record["status"]


def trial_row(trial_dir: Path) -> dict:
    """One trial's row; a trial that is not done has its status and error and no metrics."""
    trial_dir = Path(trial_dir)
    t = read_trial(trial_dir)
    row = {"trial": t["name"], "group": t["group"], "seed": t["seed"], "status": shown_status(t),
           "error": t.get("error"), "overrides": dict(t["overrides"]), "kimg_planned": t.get("kimg"),
           "private": None, "privacy_unit": None, "epsilon": None, "delta": None, "kimg": None,
           "kimg_trained": None, "sec_per_kimg": None, "metrics": {}, "intervals": {}, "extractors": {}, "note": None,
           "face_key": None, "face_share": None, "not_faces": None}
    if t["status"] == "done":
        row.update(_finished(trial_dir, pe=t.get("pe") is not None, release=t.get("release") is not None))
    return row
