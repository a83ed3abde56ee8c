"""What a release-filter run removed, read from its candidates.jsonl in one pass (bounded memory):
counts per matcher, the removal rate with its interval next to the chance band of a face of nobody in
training, the identities removed most, and how the kept set fares under the check matchers (matchers
that did not filter). filter.json carries this and every candidate's line; filter.html is the short page.

    summary = summarize(out, settings)       # settings: filter.settings.json's dict
    write_filter_json(out, summary)
"""
import heapq
from collections import Counter
from pathlib import Path

from leakguard.atomic import atomic_open, finite_or_null, strict_json
from leakguard.audit.metrics import rate
from leakguard.filter.run import CANDIDATES_FILE, candidate_records

PRIVACY_NOTE = ("the filter reads the training images: which faces are kept depends on private data, so the kept "
                "set is not post-processing of a differentially private generator and no (epsilon, delta) guarantee "
                "of the generator covers it; filter.json and filter.html name training identities and images and "
                "are private data, to be shared as the training set is")
TOP_PAIRS = 16


def _read(out: Path, thresholds: dict, check_thresholds: dict) -> dict:
    """One pass over candidates.jsonl: counts, per-identity removals and the best-scoring removed pairs."""
    gates = list(thresholds)
    acc = {"scored": 0, "kept": 0, "duplicates": 0, "removed": 0, "by": Counter(), "only_by": Counter(),
           "ids": {g: Counter() for g in gates}, "pairs": {g: [] for g in gates},
           "check_leaks": Counter(), "check_ids": {c: Counter() for c in check_thresholds}}
    path = out / CANDIDATES_FILE
    for n, r in candidate_records(path):
        try:
            _count(acc, r, gates, thresholds, check_thresholds)
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{path}:{n}: a candidate's record without its scores ({type(e).__name__}: {e}); the "
                             f"file was damaged: delete the lines from {n} on and resume, or start over with "
                             f"--force") from None
    return acc


def _count(acc: dict, r: dict, gates: list, thresholds: dict, check_thresholds: dict) -> None:
    """Adds one candidates.jsonl record to the counts."""
    acc["scored"] += 1
    if r["kept"]:
        acc["kept"] += 1
        for c, sc in r.get("check", {}).items():
            if sc["best"] >= check_thresholds[c]:
                acc["check_leaks"][c] += 1
                acc["check_ids"][c][sc["identity"]] += 1
        return
    hits = [g for g in gates if r["scores"][g]["best"] >= thresholds[g]]
    if not hits:
        acc["duplicates"] += 1
        return
    acc["removed"] += 1
    acc["by"].update(hits)
    if len(hits) == 1:
        acc["only_by"][hits[0]] += 1
    for g in hits:
        sc = r["scores"][g]
        acc["ids"][g][sc["identity"]] += 1
        item = (sc["best"], r["index"], {"label": r["label"], **sc})
        (heapq.heappush if len(acc["pairs"][g]) < TOP_PAIRS else heapq.heappushpop)(acc["pairs"][g], item)


def summarize(out: Path, settings: dict, provenance: dict, check_provenance: dict) -> dict:
    """The summary of the run in `out` (module doc); provenance: {matcher: gate.provenance}."""
    gates, checks = list(settings["matchers"]), list(settings["check_matchers"])
    acc = _read(out, {g: settings["matchers"][g]["threshold"] for g in gates},
                {c: settings["check_matchers"][c]["threshold"] for c in checks})
    n = acc["scored"]
    matchers = {g: {**provenance[g], "version": settings["matchers"][g]["version"],
                    "removed": rate(acc["by"][g], n), "removed_only_by_this": acc["only_by"][g],
                    "top_identities": [{"identity": int(i), "removed": c} for i, c in acc["ids"][g].most_common(20)],
                    "top_pairs": [p for _, _, p in sorted(acc["pairs"][g], key=lambda x: (-x[0], x[1]))]}
                for g in gates}
    kept_checks = {c: {**check_provenance[c], "version": settings["check_matchers"][c]["version"],
                       "kept_leaking": rate(acc["check_leaks"][c], acc["kept"]),
                       "top_identities": [{"identity": int(i), "count": k}
                                          for i, k in acc["check_ids"][c].most_common(20)]} for c in checks}
    return {"format": 1, "settings": settings, "scored": n, "kept": acc["kept"],
            "removed": rate(acc["removed"], n), "near_duplicates": acc["duplicates"],
            "matchers": matchers, "kept_under_check_matchers": kept_checks,
            "kept_leak_rate_under_filtering_matchers": 0.0 if acc["kept"] else None,
            "note": ("a candidate is removed when its best score over the training identities reaches the "
                     "threshold at the FMR under any filtering matcher; rates are over scored candidates with 95% "
                     "Wilson intervals; the chance band is the rate at which faces of nobody in training would be "
                     "removed by one matcher (images of a person fully correlated .. independent)"),
            "privacy": PRIVACY_NOTE}


def write_filter_json(out: Path, summary: dict) -> Path:
    """filter.json: the summary, then every candidate's line, streamed (strict JSON)."""
    head = strict_json(finite_or_null(summary), indent=1)
    with atomic_open(out / "filter.json", "w") as f:
        f.write(head[:head.rfind("}")].rstrip() + ',\n "candidates": [\n')
        with open(out / CANDIDATES_FILE) as lines:
            for k, line in enumerate(lines):
                f.write(("" if k == 0 else ",\n") + line.rstrip("\n"))
        f.write("\n ]\n}\n")
    return out / "filter.json"
