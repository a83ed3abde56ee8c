"""The audit half of `make demo`: audits the newest SynthFaces demo run for identity leakage and
membership with the synth matcher, which is trained on first use on people the generator never saw.

    python tools/demo_audit.py [RUN_DIR]        # default: the newest runs/synthfaces32-*

Data (all SynthFaces, seed 0, 32 px, written once under DATA):
    train.zip       people 0..99, images 0..19: exactly what the demo generator trained on
    members.zip     people 0..49, images 20..24: held-out photos of training people
    nonmembers.zip  people 1000..1049, images 0..4: people never in training
    matcher.zip     people 100000..100299, 10 images each: the matcher's own training people
    calib.zip       people 200000..200099, 5 images each: the matcher's calibration people
"""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from leakguard.matchers.synth_training import TrainSettings, ensure_synth_matcher  # noqa: E402
from training import rundir  # noqa: E402
from training.cli import main  # noqa: E402
from training.data.zip_format import DatasetZipWriter, Record  # noqa: E402
from training.synthfaces import SynthFaces, export_zip  # noqa: E402

RES = 32
DATA = Path.home() / ".cache" / "leakguard" / "demo_data"
MATCHER = TrainSettings(arch="synth", input_size=RES, width=16, epochs=20, batch=64)


def held_out(path: Path, people: int, first_image: int, count: int) -> Path:
    """Images first_image.. of people 0..people-1: the same people as training, photos it never had."""
    faces = SynthFaces(RES, num_identities=people, images_per_identity=first_image + count, seed=0)
    pixels = faces.render_all()
    keep = faces.image_indices >= first_image
    with DatasetZipWriter(path) as w:
        for img, i in zip(pixels[keep], faces.identities[keep]):
            w.add(Record(np.ascontiguousarray(img.transpose(1, 2, 0)), identity=int(i)))
    return path


def data() -> dict[str, Path]:
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


def main_demo(argv: list[str]) -> int:
    run = Path(argv[0]) if argv else max(Path("runs").glob("synthfaces32-*"), key=lambda p: p.stat().st_mtime)
    snapshots = rundir.list_snapshots(run / rundir.CHECKPOINTS)
    if not snapshots:
        raise SystemExit(f"{run}: no snapshot to audit; run `make demo` (or leakguard train) first")
    files = data()
    weights = ensure_synth_matcher("synth", DATA / "matchers", files["matcher.zip"], MATCHER)
    if not Path(f"{weights}.calibration.json").is_file():
        main(["matcher", "calibrate", "--matcher", "synth", "--weights", str(weights), "--data", str(files["calib.zip"])])
    out = run / "audit"
    code = main(["audit", "--generator", str(snapshots[-1]), "--seeds", "0-999", "--training", str(files["train.zip"]),
                 "--members", str(files["members.zip"]), "--nonmembers", str(files["nonmembers.zip"]),
                 "--matcher", f"synth={weights}", "--out", str(out), "--show-training-images",
                 "--force"])  # the audit of this run, redone when the demo audit runs again
    if code == 0:
        print(f"open {out / 'report.html'} in a browser")
    return code


if __name__ == "__main__":
    sys.exit(main_demo(sys.argv[1:]))
