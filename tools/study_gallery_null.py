"""The gallery null of the headline study (docs/study.md): do an arm's fakes match the people it was trained on
more often than as many people, in the same numbers, that it never saw?

    python tools/study_gallery_null.py    # after `make study` (its last step); writes OUT/gallery_null.{json,md}

Each trial's final generator (release.pt, or its last snapshot) draws 1,000 fakes (seeds 0-999); the release
filter's trials give the images they kept; the public model is audited once. Each set is audited by `leakguard
audit` under synth_b (no arm used it) and synth at FMR 1e-3 (each matcher's calibrated threshold, the same for both
galleries) against two galleries alike in structure:
  trained   the training set itself: people 0..49 with 10 images each, person 0 with 500
  new       50 people never trained on (ids 7,000..7,049) with the same counts: person 7,000 with 500
A generator that reproduces its training people, the over-represented one above all, matches the first gallery
more often; one that draws faces of the population matches both alike. The study's table keeps its own null (photos
of 1,000 new people against the training set); this one compares the same fakes with two alike galleries. Per arm:
the mean over seeds of each gallery's rate and of their difference (trained - new), with t intervals, and how many
seeds' own bootstrap intervals lie above, overlap or lie below. Every audit is skipped when its report exists;
the numbers read the training images: the data holder's view, outside every arm's guarantee.
"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.gallery_null import compare  # noqa: E402
from tools.study import OUT, PUBLIC, judges  # noqa: E402
from tools.regularizer_experiment import OVERREP_IMAGES, PEOPLE, PER  # noqa: E402
from training.data.build import export_zip  # noqa: E402
from training.synthfaces import SynthFaces  # noqa: E402

FMR = 1e-3
NEW_OFFSET = 7000
FAKES = "0-999"


def new_gallery(path: Path) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_zip(path, SynthFaces(32, num_identities=PEOPLE, images_per_identity=PER, identity_offset=NEW_OFFSET,
                                    overrep_identity=NEW_OFFSET, overrep_images=OVERREP_IMAGES, seed=0))
    return path


def images_of(trial: Path) -> list[str] | None:
    """The audit's image arguments for a finished trial; None for the public model's (audited once)."""
    if (trial / "release.pt").is_file():
        return ["--generator", str(trial / "release.pt"), "--seeds", FAKES]
    snapshots = sorted((trial / "checkpoints").glob("snapshot-*.pt"))
    if snapshots:
        return ["--generator", str(snapshots[-1]), "--seeds", FAKES]
    if (trial / "filter" / "kept").is_dir():
        return ["--generated", str(trial / "filter" / "kept")]
    return None


def t_interval(x: list[float]) -> list[float]:
    """95% t interval of the mean (a point when there is one value or no spread)."""
    m = float(np.mean(x))
    if len(x) < 2 or np.std(x) == 0:
        return [m, m]
    half = stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / np.sqrt(len(x))
    return [m - half, m + half]


def by_arm(rows: dict, matcher: str) -> dict:
    """{arm: seeds, each gallery's mean and t interval, the difference's, and the per-seed verdicts}."""
    arms = {}
    for trial, by_matcher in rows.items():
        arms.setdefault(trial.rsplit("_s", 1)[0] if trial != "public_only" else trial, []).append(by_matcher[matcher])
    out = {}
    for arm, cells in arms.items():
        trained = [c["trained"]["rate"] for c in cells]
        new = [c["new"]["rate"] for c in cells]
        diff = [a - b for a, b in zip(trained, new)]
        out[arm] = {"seeds": len(cells), "trained": [float(np.mean(trained)), t_interval(trained)],
                    "new": [float(np.mean(new)), t_interval(new)], "difference": [float(np.mean(diff)),
                                                                                   t_interval(diff)],
                    "verdicts": {v: sum(c["verdict"] == v for c in cells) for v in ("above", "overlap", "below")}}
    return out


def markdown(summary: dict) -> str:
    def ci(x):
        return f"{100 * x[0]:.1f}% [{100 * x[1][0]:.1f}, {100 * x[1][1]:.1f}]"

    lines = []
    for m, arms in summary.items():
        lines += [f"\n{m} at FMR {FMR:g}:\n", "| arm | seeds | trained gallery | new-people gallery | "
                  "difference (trained - new) | seeds above / overlap / below |", "|---|---|---|---|---|---|"]
        for arm, r in arms.items():
            v = r["verdicts"]
            diff = f"{100 * r['difference'][0]:+.1f} [{100 * r['difference'][1][0]:+.1f}, " \
                   f"{100 * r['difference'][1][1]:+.1f}]"
            lines.append(f"| {arm} | {r['seeds']} | {ci(r['trained'])} | {ci(r['new'])} | {diff} | "
                         f"{v['above']} / {v['overlap']} / {v['below']} |")
    return "\n".join(lines).lstrip("\n") + "\n"


def main() -> int:
    j = judges()
    galleries = {"trained": j["train"], "new": new_gallery(REPO / "runs" / "study" / "new_gallery.zip")}
    sources = {"public_only": ["--generator", str(PUBLIC), "--seeds", FAKES]}
    for trial in sorted((OUT / "trials").iterdir()):
        status = json.loads((trial / "trial.json").read_text()).get("status")
        images = images_of(trial)
        if status == "done" and images is not None:
            sources[trial.name] = images
    matchers = {"synth_b": j["synth_b"], "synth": j["synth"]}
    rows = compare(sources, galleries, OUT / "gallery_null", matchers, FMR)
    summary = {m: by_arm(rows, m) for m in matchers}
    (OUT / "gallery_null.json").write_text(json.dumps({"fmr": FMR, "rows": rows, "by_arm": summary}, indent=1) + "\n")
    (OUT / "gallery_null.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
