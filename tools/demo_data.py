"""What `make demo` needs besides the training run, made once and cached under DATA:

    python tools/demo_data.py        # builds what is missing; prints the eval.* overrides for `leakguard train`
    python tools/demo_data.py --regularizer    # also leakage_reg.matchers=[synth=...] (the sweep example's)

Data (all SynthFaces, seed 0, 32 px):
    train.zip       people 0..99, images 0..19: exactly what the demo generator trains on
    members.zip     people 0..49, images 20..24: held-out photos of training people
    nonmembers.zip  people 1000..1049, images 0..4: people never in training
    matcher.zip     people 100000..100299, 10 images each: the matchers' own training people
    calib.zip       people 200000..200099, 5 images each: the matchers' calibration people
Models:
    matchers/synth-*.pt, matchers/synth_b-*.pt (+ .calibration.json): two matchers of different
        architecture, trained on matcher.zip, calibrated on calib.zip
    the synthfaces feature net (people 300000..; training.synthfaces.feature_net) for fidelity
Progress goes to stderr, so `$(python tools/demo_data.py)` is just the overrides.
"""
import contextlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from leakguard.matchers.calibrate import calibration_path  # noqa: E402
from leakguard.matchers.synth_training import TrainSettings, ensure_synth_matcher  # noqa: E402
from training.cli import main  # noqa: E402
from training.data.build import export_zip  # noqa: E402
from training.data.zip_format import DatasetZipWriter, Record  # noqa: E402
from training.synthfaces import SynthFaces  # noqa: E402
from training.synthfaces.feature_net import ensure_synthfaces_features  # noqa: E402

RES = 32
DATA = Path.home() / ".cache" / "leakguard" / "demo_data"
MATCHERS = ("synth", "synth_b")
MATCHER_SETTINGS = TrainSettings(input_size=RES, width=16, epochs=20, batch=64)
EVAL = {"every_kimg": 10, "num_fakes": 1000}  # the demo's evaluation: 3 during 30 kimg


def held_out(path: Path, people: int, first_image: int, count: int, offset: int = 0, population: str = "all") -> Path:
    """Images first_image.. of people offset..offset+people-1 (of `population`): with offset 0, the same people
    as training, photos it never had."""
    faces = SynthFaces(RES, num_identities=people, images_per_identity=first_image + count, identity_offset=offset,
                       seed=0, population=population)
    pixels = faces.render_all()
    keep = faces.image_indices >= first_image
    with DatasetZipWriter(path) as w:
        for img, i in zip(pixels[keep], faces.identities[keep]):
            w.add(Record(np.ascontiguousarray(img.transpose(1, 2, 0)), identity=int(i)))
    return path


def data() -> dict[str, Path]:
    """The five zips above, written on first use."""
    DATA.mkdir(parents=True, exist_ok=True)
    specs = {"train.zip": lambda p: export_zip(p, SynthFaces(RES, num_identities=100, images_per_identity=20)),
             "members.zip": lambda p: held_out(p, 50, 20, 5),
             "nonmembers.zip": lambda p: export_zip(p, SynthFaces(RES, num_identities=50, images_per_identity=5,
                                                                  identity_offset=1000)),
             "matcher.zip": lambda p: export_zip(p, SynthFaces(RES, num_identities=300, images_per_identity=10,
                                                               identity_offset=100000)),
             "calib.zip": lambda p: export_zip(p, SynthFaces(RES, num_identities=100, images_per_identity=5,
                                                             identity_offset=200000))}
    out = {}
    for name, make in specs.items():
        out[name] = DATA / name
        if not out[name].is_file():
            make(out[name])
    return out


def matcher(arch: str, files: dict[str, Path]) -> Path:
    """A calibrated synth matcher of architecture `arch` (trained and calibrated on first use)."""
    weights = ensure_synth_matcher(arch, DATA / "matchers", files["matcher.zip"], MATCHER_SETTINGS)
    if not calibration_path(weights).is_file():
        main(["matcher", "calibrate", "--matcher", arch, "--weights", str(weights), "--data", str(files["calib.zip"])])
    return weights


def eval_overrides() -> list[str]:
    """The demo's eval.* overrides, with every file they name made first."""
    files = data()
    weights = {arch: matcher(arch, files) for arch in MATCHERS}
    features = ensure_synthfaces_features(None, resolution=RES)
    return [f"eval.every_kimg={EVAL['every_kimg']}", f"eval.num_fakes={EVAL['num_fakes']}",
            "eval.matchers=[" + ",".join(f"{a}={w}" for a, w in weights.items()) + "]",
            f"eval.members={files['members.zip']}", f"eval.nonmembers={files['nonmembers.zip']}",
            f"eval.fidelity=[synthfaces={features}]"]


def regularizer_overrides() -> list[str]:
    """leakage_reg.matchers naming the demo's calibrated synth matcher (the regularizer's weight stays the run's)."""
    return [f"leakage_reg.matchers=[synth={matcher('synth', data())}]"]


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):
        overrides = eval_overrides() + (regularizer_overrides() if "--regularizer" in sys.argv[1:] else [])
    print(" ".join(overrides))
