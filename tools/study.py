"""The headline study: every defence on a generator that measurably leaks, three seeds per arm (eight for the
undefended one), judged by a matcher no defence saw (docs/study.md).

    python tools/study.py            # `make study`: resumable; a rerun skips what is finished
    python tools/study.py --only table   # rebuild study.md and the plots from what exists

1. the data: the study setting's training set (tools/regularizer_experiment.py: people 0..49 with 10 images,
   person 0 with 500), held-out photos of its people (5 each of people 1..49, 25 of person 0), 49 people never
   trained on (non-members), and the null: 1,000 faces of people never trained on;
2. the public init, runs/dp-example/public.pt (trained by `make dp-example` if it is missing);
3. the sweep configs/sweeps/synthfaces32-study.yaml (the training arms, seed by seed), with the judges' files as
   overrides;
4. the study's table, plots and findings: runs/sweeps/synthfaces32-study/study.md.
Every number here reads the training images: the data holder's view, outside every arm's (epsilon, delta).
"""
import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.demo_data import data as demo_data, matcher as demo_matcher  # noqa: E402
from tools.regularizer_experiment import OVERREP, OVERREP_IMAGES, PEOPLE, PER, null_rates, sets  # noqa: E402
from leakguard.audit.metrics import wilson_interval  # noqa: E402
from tools.study_table import write_study  # noqa: E402
from training.cli import main  # noqa: E402
from training.data.zip_format import DatasetZipWriter, Record  # noqa: E402
from training.synthfaces import SynthFaces  # noqa: E402
from training.sweep.spec import load_spec  # noqa: E402
from training.synthfaces.feature_net import ensure_synthfaces_features  # noqa: E402

SPEC = REPO / "configs" / "sweeps" / "synthfaces32-study.yaml"
OUT = REPO / "runs" / "sweeps" / "synthfaces32-study"
DATA = REPO / "runs" / "regularizer_experiment"     # the setting's data, shared with the regularizer experiment
PUBLIC = REPO / "runs" / "dp-example" / "public.pt"
HELD_OUT, OVERREP_HELD_OUT = 5, 25                  # held-out photos per person, and of the over-represented one
NOTE = ("SynthFaces at 32 px: people 0..49 with 10 images each and person 0 with 500; every arm 60 kimg "
        "(configs/sweeps/synthfaces32-study.yaml, docs/study.md). Judged at the end of training on 1,000 fakes by "
        "synth_b, which no arm used, and synth (used by the regularizer and the filter); membership: held-out "
        "photos of the 50 people against 49 people never trained on; FD in the synthfaces features.")


def members(path: Path) -> Path:
    """Held-out photos of the training people: images PER.. of people 1..49 and OVERREP_IMAGES.. of person 0."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [SynthFaces(32, num_identities=PEOPLE - 1, images_per_identity=PER + HELD_OUT, identity_offset=1,
                         seed=0), PER,
              SynthFaces(32, num_identities=1, images_per_identity=OVERREP_IMAGES + OVERREP_HELD_OUT,
                         identity_offset=OVERREP, seed=0), OVERREP_IMAGES]
    with DatasetZipWriter(path) as w:
        for faces, first in zip(groups[::2], groups[1::2]):
            keep = faces.image_indices >= first
            for img, i in zip(faces.render_all()[keep], faces.identities[keep]):
                w.add(Record(np.ascontiguousarray(img.transpose(1, 2, 0)), identity=int(i)))
    return path


def judges() -> dict:
    """Paths of everything the judges and the regularizer read, made on first use."""
    with contextlib.redirect_stdout(sys.stderr):
        demo = demo_data()
        files = sets(DATA / "data")
        return {"synth_b": demo_matcher("synth_b", demo), "synth": demo_matcher("synth", demo),
                "features": ensure_synthfaces_features(None, resolution=32), "train": files["train"],
                "members": members(REPO / "runs" / "study" / "members.zip"),
                "nonmembers": files["nonmembers"]}


def overrides(j: dict) -> list[str]:
    return [f"eval.matchers=[synth_b={j['synth_b']},synth={j['synth']}]", f"eval.fidelity=[synthfaces={j['features']}]",
            f"eval.members={j['members']}", f"eval.nonmembers={j['nonmembers']}",
            f"leakage_reg.matchers=[synth={j['synth']}]"]


def public_init() -> None:
    """The DP example's public model (configs/synthfaces32-public.yaml), trained once and shared."""
    if not PUBLIC.is_file():
        import shutil
        from tools.dp_example import train
        PUBLIC.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(train("public", "configs/synthfaces32-public.yaml", []), PUBLIC)


def null_numbers(j: dict) -> dict:
    """The null beside every number: leak rates of 1,000 faces of people never trained on (audited against the
    training set with the same matchers), their FD and share in the manifold (the precision: the same mask)."""
    with contextlib.redirect_stdout(sys.stderr):
        rates = null_rates(DATA, {"train": j["train"]}, {"synth_b": j["synth_b"], "synth": j["synth"]})
        folder = REPO / "runs" / "study" / "null_fidelity"
        if not (folder / "fidelity.json").is_file():
            main(["fidelity", "--generated", str(DATA / "data" / "novel.zip"), "--training", str(j["train"]),
                  "--features", f"synthfaces={j['features']}", "--out", str(folder)])
    scores = json.loads((folder / "fidelity.json").read_text())["metrics"]["fd_synthfaces"]
    share, n = scores["fd_synthfaces_precision"], scores["fake_count"]
    return {**rates, "fd": scores["fd_synthfaces"], "faces": share, "faces_ci": wilson_interval(round(share * n), n)}


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["table"], help="only rebuild the table, plots and findings from what exists")
    args = p.parse_args(argv)
    j = judges()
    if args.only is None:
        public_init()
        code = main(["sweep", "run", str(SPEC), "--out", str(OUT), *overrides(j)])
        if code != 0:
            return code
    spec = load_spec(SPEC, overrides(j))
    planned = {arm: len(spec.seeds) + len(spec.arm_seeds.get(arm, [])) for arm in [*spec.arms, *spec.releases]}
    path = write_study(OUT, null_numbers(j), planned, NOTE)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(run())
