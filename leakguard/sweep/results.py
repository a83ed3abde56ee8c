"""A sweep's results table: one row per trial (leakguard.sweep.trial), written as SWEEP/results.json and
SWEEP/results.csv, and the rows of each group (trials that differ only in seed) as means with intervals.

    rows = read_rows("runs/sweeps/dp-ablation")
    write_results(rows, "runs/sweeps/dp-ablation")
    groups = group_rows(rows)

results.json is strict JSON: {"trials": rows, "groups": group_rows(rows)}, NaN and infinity as null
(a row's "private": false says that its null epsilon is infinite: trained without DP). results.csv has
one trial per line, columns in a fixed order (csv_columns): the trial's fields, one column per override
key, the privacy columns (epsilon "inf" without DP), the faces columns (face_key, face_share, not_faces:
see leakguard.sweep.trial), then per metric column its value and, for leak rates, AUCs and face shares,
`<column>_lo` and `<column>_hi`, then `extractor@<key>` and the note.

A group's face_share is the mean over its seeds of faces@<face_key> (the first extractor's share of
faces); "not_faces" when it is below leakguard.audit.faces.MIN_FACE_SHARE. Such a group's fakes are
mostly not faces: the Pareto fronts leave it out (leakguard.sweep.pareto) and the report marks it.
"""
import csv
import io
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from leakguard import run_files
from leakguard.atomic import finite_or_null, write_json, write_text
from leakguard.audit.faces import MIN_FACE_SHARE
from leakguard.sweep.trial import trial_row, unrecorded

__all__ = ["trial_row", "read_rows", "unrecorded", "write_results", "group_rows", "metric_order", "csv_columns",
           "t_interval"]

LEVEL = 0.95  # the coverage of every interval: the t intervals over seeds and the audit's own
HEAD = ["trial", "group", "seed", "status", "error"]
PRIVACY = ["private", "privacy_unit", "epsilon", "delta", "kimg_planned", "kimg", "kimg_trained", "sec_per_kimg"]
FACES = ["face_key", "face_share", "not_faces"]
FIDELITY_KINDS = ("fd", "kid", "kid_std", "precision", "recall")
FACE_KINDS = ("faces", "detected")
NUMERIC = ("epsilon", "kimg", "kimg_trained", "sec_per_kimg")  # a row's numbers outside its metrics


def read_rows(sweep_dir) -> list[dict]:
    """Every trial's row, by trial name (folders without a trial.json are left out: unrecorded lists them)."""
    trials = Path(sweep_dir).expanduser() / "trials"
    if not trials.is_dir():
        raise ValueError(f"{trials}: no trials folder; is {sweep_dir} a sweep's output folder?")
    return [trial_row(p.parent) for p in sorted(trials.glob("*/trial.json"), key=lambda p: p.parent.name)]


def _metric_key(col: str) -> tuple:
    """Leak rates by matcher and falling FMR, then the shares of faces (manifold, then detector), then AUCs,
    then each extractor's fidelity numbers."""
    kind, _, rest = col.partition("@")
    where, _, fmr = rest.partition("@")
    if kind == "leak":
        return 0, where, -float(fmr), col
    if kind in FACE_KINDS:
        return 1, FACE_KINDS.index(kind), where, col
    if kind in ("auc", "auc_overrep"):
        return 2, where, kind == "auc_overrep", col
    return 3, where, FIDELITY_KINDS.index(kind) if kind in FIDELITY_KINDS else len(FIDELITY_KINDS), col


def metric_order(columns) -> list[str]:
    """The metric columns in the one order every table and plot uses, whatever order they came in."""
    return sorted(set(columns), key=_metric_key)


def _has_interval(col: str) -> bool:
    return col.startswith(("leak@", "auc@", "auc_overrep@", "faces@", "detected@"))


def csv_columns(rows: Sequence[dict]) -> list[str]:
    overrides = sorted({k for r in rows for k in r["overrides"]})
    clash = set(overrides) & set(HEAD + PRIVACY + FACES + ["note"])
    if clash:
        raise ValueError(f"override keys {sorted(clash)} clash with results.csv's own columns")
    metrics = []
    for col in metric_order(c for r in rows for c in r["metrics"]):
        metrics += [col, f"{col}_lo", f"{col}_hi"] if _has_interval(col) else [col]
    extractors = [f"extractor@{k}" for k in sorted({k for r in rows for k in r["extractors"]})]
    return HEAD + overrides + PRIVACY + FACES + metrics + extractors + ["note"]


def _flat(row: dict) -> dict:
    out = {k: row[k] for k in HEAD + PRIVACY + FACES + ["note"]}
    out.update(row["overrides"])
    for col, v in row["metrics"].items():
        out[col] = v
        lo, hi = row["intervals"].get(col) or (None, None)
        out[f"{col}_lo"], out[f"{col}_hi"] = lo, hi
    out.update({f"extractor@{k}": v for k, v in row["extractors"].items()})
    return out


def _cell(v) -> str:
    """repr for floats (round-trips exactly: 'inf' and 'nan' too), JSON for non-strings, '' for none."""
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def write_results(rows: Sequence[dict], sweep_dir) -> tuple[Path, Path]:
    """SWEEP/results.json and SWEEP/results.csv, each written atomically; returns both paths."""
    sweep_dir = Path(sweep_dir).expanduser()
    rows = list(rows)
    json_path = write_json(sweep_dir / run_files.RESULTS_JSON,
                           finite_or_null({"trials": rows, "groups": group_rows(rows)}))
    columns = csv_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        flat = _flat(row)
        writer.writerow([_cell(flat.get(c)) for c in columns])
    return json_path, write_text(sweep_dir / run_files.RESULTS_CSV, buf.getvalue())


def t_interval(x: np.ndarray, level: float = LEVEL) -> list[float] | None:
    """The Student-t interval of the mean of n >= 2 seeds' values [n]; None when one is not finite."""
    x = np.asarray(x, np.float64)
    if len(x) < 2 or not np.isfinite(x).all():
        return None
    half = stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return [float(x.mean() - half), float(x.mean() + half)]


def _numbers(row: dict) -> dict:
    return {**{k: math.nan if row[k] is None else float(row[k]) for k in NUMERIC}, **row["metrics"]}


def _interval_note(n: int) -> str:
    if n >= 2:
        return f"{100 * LEVEL:g}% Student-t interval of the mean over {n} seeds"
    return (f"1 seed: the trial's own {100 * LEVEL:g}% intervals (leak rate, AUC, share of faces), none for the "
            "other numbers")


def _group(name: str, trials: list[dict]) -> dict:
    overrides = trials[0]["overrides"]
    differ = [t["trial"] for t in trials if t["overrides"] != overrides]
    if differ:
        raise ValueError(f"group {name!r}: trials {differ} have other overrides than {trials[0]['trial']!r}; "
                         "trials of one group may differ only in seed")
    per = [_numbers(t) for t in trials]
    shared = [c for c in per[0] if all(c in p for p in per)]  # a column some seeds lack is left out, and listed
    means, intervals = {}, {}
    for col in shared:
        x = np.array([p[col] for p in per], np.float64)  # [n seeds]
        means[col] = float(x.mean())  # inf when every seed is non-private (epsilon)
        ci = t_interval(x) if len(trials) >= 2 else trials[0]["intervals"].get(col)
        if ci is not None:
            intervals[col] = ci
    return {"group": name, "overrides": overrides, "n_seeds": len(trials), "seeds": [t["seed"] for t in trials],
            "trials": [t["trial"] for t in trials], "private": all(t["private"] for t in trials),
            "privacy_unit": trials[0]["privacy_unit"], "delta": trials[0]["delta"],
            "means": means, "intervals": intervals, "interval": "t" if len(trials) >= 2 else "trial",
            "interval_note": _interval_note(len(trials)),
            "incomplete": sorted(set().union(*per) - set(shared)),
            "extractors": trials[0]["extractors"], "note": trials[0]["note"], **_faces(trials[0]["face_key"], means)}


def _faces(key: str | None, means: dict) -> dict:
    """The group's face_key, face_share (the mean of faces@<key> over seeds) and not_faces (results' doc)."""
    share = means.get(f"faces@{key}") if key is not None else None
    unknown = share is None or math.isnan(share)
    return {"face_key": key, "face_share": share, "not_faces": None if unknown else share < MIN_FACE_SHARE}


def group_rows(rows: Sequence[dict]) -> list[dict]:
    """Per group of done trials, by group name: the mean of each number over seeds and its interval
    ("interval": "t" with >= 2 seeds, "trial" with 1: the trial's own leak rate, AUC and face share intervals)."""
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == "done":
            by_group.setdefault(row["group"], []).append(row)
    return [_group(name, sorted(trials, key=lambda t: t["seed"])) for name, trials in sorted(by_group.items())]
