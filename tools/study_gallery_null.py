"""The gallery null of the headline study (docs/study.md): do an arm's fakes match the people it was trained on
more often than as many people, in the same numbers, that it never saw?

    python tools/study_gallery_null.py    # after `make study` (its last step); writes OUT/gallery_null.{json,md}
    python tools/study_gallery_null.py --new-offset 8000   # another 50 new people: OUT/gallery_null_new8000.*

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
import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from leakguard.sweep.results import t_interval  # noqa: E402
from tools.gallery_null import compare  # noqa: E402
from tools.study import OUT, PUBLIC, judges  # noqa: E402
from tools.regularizer_experiment import OVERREP_IMAGES, PEOPLE, PER  # noqa: E402
from training.data.build import export_zip  # noqa: E402
from training.synthfaces import SynthFaces  # noqa: E402

FMR = 1e-3
VERDICTS = ("above", "overlapping", "below")   # a seed's trained-gallery interval against the new one's
NEW_OFFSET = 7000
FAKES = "0-999"


TAKEN = {"training people": range(0, PEOPLE), "non-members": range(1000, 1000 + PEOPLE - 1),
         "null's people": range(5000, 6000), "matcher's people": range(100000, 100300),
         "calibration's people": range(200000, 200100)}


def taken_by(ids: range) -> str | None:
    """Which of the study's sets already holds some of `ids` (None: they are all new)."""
    return next((name for name, used in TAKEN.items() if set(ids) & set(used)), None)


def new_gallery(path: Path, offset: int) -> Path:
    """People offset..offset+49 in the training set's numbers (the first with OVERREP_IMAGES images)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_zip(path, SynthFaces(32, num_identities=PEOPLE, images_per_identity=PER, identity_offset=offset,
                                    overrep_identity=offset, overrep_images=OVERREP_IMAGES, seed=0))
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
                    "verdicts": {v: sum(c["verdict"] == v for c in cells) for v in VERDICTS}}
    return out


def markdown(summary: dict) -> str:
    def ci(x, sign=""):  # [mean, t interval or None (one seed)]
        spread = "" if x[1] is None else f" [{100 * x[1][0]:{sign}.1f}, {100 * x[1][1]:{sign}.1f}]"
        return f"{100 * x[0]:{sign}.1f}{'' if sign else '%'}{spread}"

    lines = []
    for m, arms in summary.items():
        lines += [f"\n{m} at FMR {FMR:g}:\n", "| arm | seeds | trained gallery | new-people gallery | "
                  "difference (trained - new) | seeds above / overlapping / below |", "|---|---|---|---|---|---|"]
        for arm, r in arms.items():
            v = r["verdicts"]
            lines.append(f"| {arm} | {r['seeds']} | {ci(r['trained'])} | {ci(r['new'])} | "
                         f"{ci(r['difference'], '+')} | {' / '.join(str(v[k]) for k in VERDICTS)} |")
    return "\n".join(lines).lstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-offset", type=int, default=NEW_OFFSET,
                    help="the new people's first id (default %(default)s)")
    offset = ap.parse_args(argv).new_offset
    clash = taken_by(range(offset, offset + PEOPLE))
    if clash:
        print(f"study_gallery_null: --new-offset {offset}: people {offset}..{offset + PEOPLE - 1} include the "
              f"{clash}; give one whose 50 people are new (7000, 8000, ...)", file=sys.stderr)
        return 2
    name = "gallery_null" if offset == NEW_OFFSET else f"gallery_null_new{offset}"
    j = judges()
    gallery = REPO / "runs" / "study" / ("new_gallery.zip" if offset == NEW_OFFSET else f"new_gallery_{offset}.zip")
    galleries = {"trained": j["train"], "new": new_gallery(gallery, offset)}
    sources = {"public_only": ["--generator", str(PUBLIC), "--seeds", FAKES]}
    for trial in sorted((OUT / "trials").iterdir()):
        status = json.loads((trial / "trial.json").read_text()).get("status")
        images = images_of(trial)
        if status == "done" and images is not None:
            sources[trial.name] = images
    matchers = {"synth_b": j["synth_b"], "synth": j["synth"]}
    rows = compare(sources, galleries, OUT / name, matchers, FMR)
    summary = {m: by_arm(rows, m) for m in matchers}
    record = {"fmr": FMR, "new_offset": offset, "rows": rows, "by_arm": summary}
    (OUT / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    (OUT / f"{name}.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
