"""The gallery null of `make dp-example` (docs/dp_example.md): do an arm's fakes match the people it was trained on
more often than as many people it never saw?

    python tools/gallery_null.py          # after tools/dp_example.py; writes runs/dp-example/gallery_null.{json,md}

Each arm's 2,000 fakes (seeds 0-1999) are audited twice by `leakguard audit`, under synth_b (held out: no arm used
it) and synth at FMR 1e-3 (each matcher's calibrated threshold, the same for both galleries), against two galleries
of the private population with two photos per person (the audit reads genuine pairs in its training set):
  trained   the first two training photos of each of the 2,000 trained people
  new       two photos of each of 2,000 people never trained on (the null set's people of dp_example.py)
A generator that reproduces its training people matches the first gallery more often; one that draws faces of the
population matches both alike. The null of dp_example.py asks a different question (how often a real photo of a new
person matches a training person) and sits far above every arm, because a real photo carries an identity more
sharply than a fake; this one compares the same fakes with two alike galleries. Controls: the public model's fakes
(it saw neither gallery) and, as a positive control, held-out photos of 500 trained people, which must match the
trained gallery far more often than the new one if the comparison can see leakage at all.
Every audit is skipped when its report exists. The numbers read private images: outside every arm's guarantee.
"""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_data  # noqa: E402
from dp_example import FAKES, FMR, LEAKGUARD, OUT, data, final_networks, photos, run, run_folder  # noqa: E402
from study_table import apart  # noqa: E402

ARMS = ("public_only", "nonprivate", "dp8_s0", "dp8_s1", "dp1", "dp1_s1")
MATCHERS = ("synth_b", "synth")
POSITIVE = "trained_photos"   # held-out photos of trained people, the positive control


def galleries() -> dict[str, Path]:
    return {"trained": photos(OUT / "data" / "trained_two_photos.zip", 0, 2000, 0, 2),
            "new": photos(OUT / "data" / "new_two_photos.zip", 60000, 2000, 0, 2)}


def audit(out: Path, images: list[str], path: Path, matchers: dict) -> dict:
    """`leakguard audit` of `images` (its --generator/--generated arguments) against the gallery `path` under
    `matchers` ({name: weights}), made unless out/report.json exists."""
    if not (out / "report.json").is_file():
        run([LEAKGUARD, "audit", *images, "--training", str(path), "--device", "cpu",
             *[a for m, w in matchers.items() for a in ("--matcher", f"{m}={w}")], "--out", str(out), "--force"])
    return json.loads((out / "report.json").read_text())


def leak_at(report: dict, matcher: str, fmr: float) -> dict:
    row = next(r for r in report["matchers"][matcher]["leakage"] if math.isclose(r["fmr"], fmr))
    return {"rate": row["leak_rate"], "ci": list(row["leak_rate_ci"])}


def row(reports: dict, matcher: str, fmr: float) -> dict:
    """One source under one matcher: the two galleries' rates and whether the trained one's interval lies
    'above', 'below' or is 'overlapping' the new one's (at the null)."""
    trained, new = leak_at(reports["trained"], matcher, fmr), leak_at(reports["new"], matcher, fmr)
    return {"trained": trained, "new": new, "verdict": apart(trained["ci"], new["ci"])}


def compare(sources: dict[str, list[str]], galleries: dict[str, Path], out: Path, matchers: dict,
            fmr: float) -> dict:
    """{source: {matcher: row}}: each source audited against both galleries."""
    rows = {}
    for name, images in sources.items():
        reports = {g: audit(out / name / g, images, path, matchers) for g, path in galleries.items()}
        rows[name] = {m: row(reports, m, fmr) for m in matchers}
    return rows


def markdown(rows: dict) -> str:
    def ci(x):
        return f"{x['rate']:.3f} [{x['ci'][0]:.3f}, {x['ci'][1]:.3f}]"

    lines = ["| arm | matcher | trained gallery | new-people gallery | trained vs new |", "|---|---|---|---|---|"]
    for arm, by_matcher in rows.items():
        for m, r in by_matcher.items():
            lines.append(f"| {arm} | {m} | {ci(r['trained'])} | {ci(r['new'])} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    sources = {}
    for arm in ARMS:  # checked before anything is written
        networks = OUT / "public.pt" if arm == "public_only" else final_networks(run_folder(arm) or OUT / "missing")
        if networks is None or not networks.is_file():
            print(f"gallery_null: arm {arm} has no final networks under {OUT}; run tools/dp_example.py first",
                  file=sys.stderr)
            return 2
        sources[arm] = ["--generator", str(networks), "--seeds", FAKES]
    files = data()
    matchers = {m: demo_data.matcher(m, demo_data.data()) for m in MATCHERS}
    sources = {POSITIVE: ["--generated", str(files["members"])], **sources}
    rows = compare(sources, galleries(), OUT / "gallery_null", matchers, FMR)
    (OUT / "gallery_null.json").write_text(json.dumps({"fmr": FMR, "rows": rows}, indent=1) + "\n")
    (OUT / "gallery_null.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
