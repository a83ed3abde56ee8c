"""`leakguard matcher calibrate` and `leakguard audit` end to end on the CPU: a randomly initialised
generator checkpoint against a SynthFaces training zip, the synth matcher with its calibration file;
and the errors that tell a user what to supply."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.synth_matcher import RES
from training.checkpoint import save_networks
from training.cli import main
from training.cli.generate import random_generator
from training.data.build import export_zip
from training.synthfaces import SynthFaces


@pytest.fixture(scope="module")
def files(tmp_path_factory, synth_matcher_weights):
    root = tmp_path_factory.mktemp("audit_cli")
    weights = root / "synth.pt"
    shutil.copy(synth_matcher_weights, weights)
    data = dict(train=export_zip(root / "train.zip", SynthFaces(RES, num_identities=8, images_per_identity=4)),
                members=export_zip(root / "members.zip", SynthFaces(RES, num_identities=8, images_per_identity=2,
                                                                    seed=1)),
                nonmembers=export_zip(root / "nonmembers.zip", SynthFaces(RES, num_identities=8, images_per_identity=2,
                                                                          identity_offset=50)),
                calib=export_zip(root / "calib.zip", SynthFaces(RES, num_identities=20, images_per_identity=4,
                                                                identity_offset=300)))
    generator = root / "G.pt"
    save_networks(generator, {"G_ema": random_generator(RES, 0)})
    return dict(root=root, weights=weights, generator=generator, **data)


def audit_args(files, *extra):
    return ["audit", "--generator", str(files["generator"]), "--seeds", "0-11", "--training", str(files["train"]),
            "--matcher", f"synth={files['weights']}", "--cache", str(files["root"] / "cache"), "--bootstrap", "50",
            *extra]


def test_calibrate_then_audit_writes_both_reports(files, capsys):
    assert main(["matcher", "calibrate", "--matcher", "synth", "--weights", str(files["weights"]),
                 "--data", str(files["calib"]), "--cache", str(files["root"] / "cache")]) == 0
    cal_path = files["root"] / "synth.pt.calibration.json"
    assert cal_path.is_file() and "wrote" in capsys.readouterr().out
    out = files["root"] / "report"
    assert main(audit_args(files, "--members", str(files["members"]), "--nonmembers", str(files["nonmembers"]),
                           "--out", str(out))) == 0
    report = json.loads((out / "report.json").read_text())
    section = report["matchers"]["synth"]
    assert section["threshold_source"] == f"calibration file {cal_path}"
    thresholds = json.loads(cal_path.read_text())["points"]
    assert [r["threshold"] for r in section["leakage"]] == [p["threshold"] for p in thresholds]
    assert report["inputs"]["generated"]["count"] == 12 and report["inputs"]["training"]["identities"] == 8
    assert section["membership"]["members"] == 8 and section["membership"]["nonmembers"] == 8
    html = (out / "report.html").read_text()
    assert "synth" in html and html.count("<img") == 3 + len(section["top_pairs"])  # bars, histograms, ROC
    assert "training image hidden" in html
    printed = capsys.readouterr().out
    assert "synth: leak rate" in printed and "membership AUC" in printed


def test_audit_of_an_image_folder_without_membership(files, tmp_path):
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for i in range(5):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, [RES, RES, 3], dtype=np.uint8)).save(
            fakes / f"{i}.png")
    args = audit_args(files, "--out", str(tmp_path / "r"), "--show-training-images")
    args[1:5] = ["--generated", str(fakes)]
    assert main(args) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["matchers"]["synth"]["membership"] is None and report["inputs"]["generated"]["count"] == 5


def test_errors_say_what_to_supply(files, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = audit_args(files, "--out", str(tmp_path / "r"))
    args[1:5] = ["--generated", str(empty)]
    assert main(args) == 2
    assert "no images found" in capsys.readouterr().err

    no_ids = tmp_path / "no_ids"
    no_ids.mkdir()
    Image.fromarray(np.zeros([RES, RES, 3], np.uint8)).save(no_ids / "a.png")
    args = audit_args(files, "--out", str(tmp_path / "r"))
    args[args.index("--training") + 1] = str(no_ids)
    assert main(args) == 2
    assert "no dataset.json" in capsys.readouterr().err

    args = audit_args(files, "--out", str(tmp_path / "r"))
    args[args.index("--matcher") + 1] = f"synth={tmp_path / 'missing.pt'}"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "weights file not found" in err and "leakguard matcher train" in err

    args = audit_args(files, "--out", str(tmp_path / "r"), "--members", str(files["members"]))
    assert main(args) == 2
    assert "--nonmembers" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        main(audit_args(files, "--out", str(tmp_path / "r"), "--matcher", "vggface"))
    assert "unknown matcher 'vggface'" in capsys.readouterr().err
