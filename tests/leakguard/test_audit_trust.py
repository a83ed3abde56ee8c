"""Audit numbers a user can trust: thresholds say where they came from and how much data set them,
an FMR that few people or few pairs cannot support is marked everywhere and not presented as a
finding, a calibration of another matcher version is refused, warnings reach the terminal, every
JSON file is strict, and the pair grid says when no pair leaks. On SynthFaces with the synth matcher."""
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
    root = tmp_path_factory.mktemp("audit_trust")
    faces = SynthFaces(RES, num_identities=8, images_per_identity=4)
    data = dict(train=export_zip(root / "train.zip", faces),
                calib30=export_zip(root / "calib30.zip", SynthFaces(RES, num_identities=30, images_per_identity=4,
                                                                    identity_offset=300)))
    memorised = root / "memorised"                 # a generator that copies its training images
    memorised.mkdir()
    for i in range(len(faces)):
        Image.fromarray(faces[i][0].transpose(1, 2, 0)).save(memorised / f"{i:03d}.png")
    generator = root / "G.pt"
    save_networks(generator, {"G_ema": random_generator(RES, 0)})
    return dict(root=root, weights=synth_matcher_weights, generator=generator, memorised=memorised, **data)


def weights_copy(files, name: str):
    """A matcher weights file of its own, so each test controls the calibration file beside it."""
    path = files["root"] / name
    shutil.copy(files["weights"], path)
    return path


def audit(files, weights, out, *extra, source=("--generator",)):
    src = ["--generator", str(files["generator"]), "--seeds", "0-11"] if source == ("--generator",) else \
        ["--generated", str(files["memorised"])]
    return main(["audit", *src, "--training", str(files["train"]), "--matcher", f"synth={weights}",
                 "--cache", str(files["root"] / "cache"), "--bootstrap", "50", "--out", str(out), *extra])


def strict_load(path):
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_training_set_thresholds_of_eight_people_support_no_fmr(files, tmp_path, capsys):
    weights = weights_copy(files, "nocal.pt")
    assert audit(files, weights, tmp_path / "r") == 0
    captured = capsys.readouterr()
    section = strict_load(tmp_path / "r" / "report.json")["matchers"]["synth"]
    for row in section["leakage"]:
        assert row["supported"] is False and "8 identities (it needs 30)" in row["why_unsupported"]
        assert row["threshold_source"] == "training set (R-R pairs)" and row["calibration_identities"] == 8
        assert row["impostor_pairs"] == (32 * 31 - 8 * 4 * 3) // 2
        low, high = row["threshold_ci"]                       # over resamples of the 8 people
        assert low <= high
    # The terminal says why, and the summary line shows no rate for an unsupported FMR.
    assert "warning: synth: no calibration file: thresholds come from the training set's own pairs" in captured.err
    assert "warning: synth: the training set has 8 identities" in captured.err
    assert "alignment" not in captured.err     # drawn faces: the detector cannot check, and says nothing
    assert ("FMR 0.01 is not supported by 448 impostor pairs (it needs 1,000, 10 / FMR) and 8 identities (it needs "
            "30): its leak rate is not a finding") in captured.err
    assert "synth: leak rate unsupported at FMR 0.01, unsupported at FMR 0.001, unsupported at FMR 0.0001" \
        in captured.out
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Read before trusting these numbers" in html
    assert "† FMR 0.001 is not supported by" in html and "8 identities" in html


def test_thirty_people_support_fmr_1e_2_but_not_1e_3(files, tmp_path, capsys):
    weights = weights_copy(files, "cal30.pt")
    assert main(["matcher", "calibrate", "--matcher", "synth", "--weights", str(weights), "--data",
                 str(files["calib30"]), "--cache", str(files["root"] / "cache")]) == 0
    calibrated = capsys.readouterr()
    assert "FMR 0.001: threshold" in calibrated.out and "(unsupported)" in calibrated.out
    assert "warning: FMR 0.001 is not supported by 6,960 impostor pairs" in calibrated.err
    assert audit(files, weights, tmp_path / "r") == 0
    captured = capsys.readouterr()
    rows = {r["fmr"]: r for r in strict_load(tmp_path / "r" / "report.json")["matchers"]["synth"]["leakage"]}
    pairs = (120 * 119 - 30 * 4 * 3) // 2                                  # 6,960 impostor pairs
    assert rows[0.01]["supported"] and rows[0.01]["why_unsupported"] == ""
    assert rows[0.01]["impostor_pairs"] == pairs and rows[0.01]["calibration_identities"] == 30
    assert rows[0.01]["threshold_source"] == f"calibration file {weights}.calibration.json"
    assert rows[0.01]["threshold_ci"] == strict_load(weights.with_name("cal30.pt.calibration.json"))["points"][0][
        "threshold_ci"] and len(rows[0.01]["threshold_ci"]) == 2
    assert rows[0.001]["why_unsupported"] == f"FMR 0.001 is not supported by {pairs:,} impostor pairs " \
                                             "(it needs 10,000, 10 / FMR)"
    assert "no calibration file" not in captured.err
    assert f"{rows[0.01]['leak_rate']:.3f} at FMR 0.01, unsupported at FMR 0.001" in captured.out
    html = (tmp_path / "r" / "report.html").read_text()
    assert "impostor pairs of 30 identities" in html


def test_a_calibration_of_another_matcher_version_is_refused(files, tmp_path, capsys):
    weights = weights_copy(files, "stale.pt")
    assert main(["matcher", "calibrate", "--matcher", "synth", "--weights", str(weights), "--data",
                 str(files["calib30"]), "--cache", str(files["root"] / "cache"), "--alignment", "ffhq"]) == 0
    capsys.readouterr()
    assert audit(files, weights, tmp_path / "r") == 2             # the audit runs alignment 'none'
    err = capsys.readouterr().err
    assert f"{weights}.calibration.json: calibrated for matcher version 'synth-" in err and "-ffhq'" in err
    assert "but the audit runs 'synth-" in err and "-none'" in err
    assert not (tmp_path / "r").exists()                          # refused before anything was written
    # A file of other weights (same alignment) is refused the same way.
    cal = json.loads((files["root"] / "stale.pt.calibration.json").read_text())
    cal["matcher"] = "synth-905f106d1a37-none"
    (files["root"] / "stale.pt.calibration.json").write_text(json.dumps(cal))
    assert audit(files, weights, tmp_path / "r") == 2
    assert "calibrated for matcher version 'synth-905f106d1a37-none'" in capsys.readouterr().err


def test_every_json_the_audit_writes_is_strict(files, tmp_path):
    weights = weights_copy(files, "strict.pt")
    assert audit(files, weights, tmp_path / "r") == 0
    written = [tmp_path / "r" / "report.json", *sorted((files["root"] / "cache").rglob("*.json"))]
    assert len(written) >= 3
    for path in written:
        strict_load(path)
    report = strict_load(tmp_path / "r" / "report.json")
    assert all(r["ratio"] is None or np.isfinite(r["ratio"]) for r in report["matchers"]["synth"]["leakage"])


def test_the_pair_grid_says_when_no_pair_leaks(files, tmp_path):
    weights = weights_copy(files, "grid.pt")
    assert audit(files, weights, tmp_path / "random") == 0        # an untrained generator: nobody leaks
    section = strict_load(tmp_path / "random" / "report.json")["matchers"]["synth"]
    assert not any(p["leaks"] for p in section["top_pairs"])
    html = (tmp_path / "random" / "report.html").read_text()
    assert "<h3>Closest pairs</h3>" in html and "None of these pairs passes any threshold" in html
    assert audit(files, weights, tmp_path / "copies", source=("--generated",)) == 0
    section = strict_load(tmp_path / "copies" / "report.json")["matchers"]["synth"]
    assert all(p["leaks"] for p in section["top_pairs"])        # a copying generator: every top pair leaks
    html = (tmp_path / "copies" / "report.html").read_text()
    assert "<h3>Top leaking pairs</h3>" in html and "Closest pairs" not in html


def test_pairs_name_people_files_and_seeds(files, tmp_path, capsys):
    people = tmp_path / "people"
    faces = SynthFaces(RES, num_identities=8, images_per_identity=4)
    names = ["ada", "bo", "cy", "di", "ed", "flo", "gus", "hal"]
    for i in range(len(faces)):
        folder = people / names[i // 4]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(faces[i][0].transpose(1, 2, 0)).save(folder / f"photo{i % 4}.png")
    train = tmp_path / "named.zip"
    assert main(["dataset", "--source", str(people), "--dest", str(train), "--layout", "identity-folders"]) == 0
    assert strict_load(train.with_suffix(".identities.json")) == {str(k): n for k, n in enumerate(names)}
    weights = weights_copy(files, "names.pt")
    common = ["--training", str(train), "--matcher", f"synth={weights}", "--cache", str(files["root"] / "cache"),
              "--bootstrap", "20"]
    assert main(["audit", "--generated", str(files["memorised"]), *common, "--out", str(tmp_path / "a")]) == 0
    section = strict_load(tmp_path / "a" / "report.json")["matchers"]["synth"]
    top = section["top_pairs"][0]
    assert top["identity_name"] == names[top["identity"]] and top["generated_name"].endswith(".png")
    assert top["training_name"] == f"00000/img{top['training_index']:08d}.png"   # its name in the zip
    assert all(x["name"] == names[x["identity"]] for x in section["top_leakers"])
    html = (tmp_path / "a" / "report.html").read_text()
    assert f"(identity {top['identity_name']} ({top['identity']}))" in html and top["generated_name"] in html
    assert main(["audit", "--generator", str(files["generator"]), "--seeds", "5-9", *common,
                 "--out", str(tmp_path / "g")]) == 0
    labels = [p["generated_name"] for p in strict_load(tmp_path / "g" / "report.json")["matchers"]["synth"]["top_pairs"]]
    assert sorted(labels) == ["seed0005", "seed0006", "seed0007", "seed0008", "seed0009"]


def test_a_ratio_that_is_no_number_is_null_with_a_note(tmp_path):
    from leakguard.audit.audit import leakage_rows
    from leakguard.audit.report import write_report
    from leakguard.matchers.calibrate import calibrate
    rng = np.random.default_rng(0)
    e = rng.normal(size=[40, 8])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    cal = calibrate(e, np.repeat(np.arange(10), 4), fmrs=(1e-4,))        # no impostor may match: chance 0
    leaking = leakage_rows(np.array([1.0, 0.0]), cal, (1e-4,), identities=10, images=40, resamples=10)
    quiet = leakage_rows(np.array([0.0, 0.0]), cal, (1e-4,), identities=10, images=40, resamples=10)
    assert leaking[0]["chance_rate"] == 0 and leaking[0]["ratio"] == float("inf")
    assert leaking[0]["ratio_note"] == "infinite: leaking samples against a chance rate of 0"
    assert quiet[0]["ratio_note"] == "undefined: no leaking sample and a chance rate of 0"
    report = {"format": 1, "matchers": {"m": {"leakage": leaking}}}
    json_path, _ = write_report(tmp_path, report)
    row = strict_load(json_path)["matchers"]["m"]["leakage"][0]
    assert row["ratio"] is None and row["ratio_note"].startswith("infinite")


def test_a_published_point_for_a_matcher_not_in_the_audit_is_refused_first(files, tmp_path, capsys):
    weights = weights_copy(files, "pub.pt")
    assert audit(files, weights, tmp_path / "r", "--threshold", "dlib=published") == 2
    err = capsys.readouterr().err
    assert "--threshold dlib=published: dlib is not among the audit's matchers (synth); add --matcher dlib" in err
    assert not (tmp_path / "r").exists() and not any("embed" in line for line in err.splitlines())
