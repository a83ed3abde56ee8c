"""`leakguard filter`: a generator's seeds or a folder through the filter, filter.json and filter.html,
the next seeds rendered until --count pass, and bad input as one line with exit 2."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from leakguard.matchers.calibrate import calibrate, calibration_path, save_calibration
from leakguard.matchers.synth import SynthMatcher
from tests.leakguard.test_audit_ground_truth import faces, perturb
from training.checkpoint import save_networks
from training.cli import main
from training.data.build import export_zip
from training.inference import generate
from training.networks import Generator
from training.synthfaces import SynthFaces


@pytest.fixture(scope="module")
def files(tmp_path_factory, synth_matcher_weights):
    """train.zip (30 people x 10), a calibrated copy of the synth matcher, and candidates/: 20 new faces
    and 20 perturbed copies of training person 3."""
    root = tmp_path_factory.mktemp("filter_cli")
    train_ds = SynthFaces(32, num_identities=30, images_per_identity=10, seed=0)
    train = export_zip(root / "train.zip", train_ds)
    weights, uncalibrated = root / "synth.pt", root / "raw" / "synth.pt"
    uncalibrated.parent.mkdir()
    for path in (weights, uncalibrated):
        path.write_bytes(synth_matcher_weights.read_bytes())
    m = SynthMatcher(weights=weights)
    calib_ds, calib_pixels = faces(300, 100, 5)
    save_calibration(calibration_path(weights), calibrate(m.embed(calib_pixels), calib_ds.identities,
                                                          matcher=m.version))
    pixels = torch.from_numpy(train_ds.render_all().copy())
    copies = perturb(pixels[torch.from_numpy(train_ds.identities == 3)].repeat(2, 1, 1, 1), seed=3)
    _, novel = faces(500, 20, 1)
    folder = root / "candidates"
    folder.mkdir()
    for i, img in enumerate(torch.cat([novel, copies])):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"img{i:03d}.png")
    return dict(root=root, train=train, weights=weights, uncalibrated=uncalibrated, candidates=folder)


def run(capsys, *argv):
    code = main(["filter", *map(str, argv), "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_filter_writes_kept_images_json_and_page(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "--generated", files["candidates"], "--training", files["train"],
                            "--matcher", f"synth={files['weights']}", "--fmr", "1e-3", "--out", out,
                            "--cache", tmp_path / "cache")
    assert code == 0, err
    report = json.loads((out / "filter.json").read_text())           # strict JSON, streamed
    assert report["scored"] == 40 and len(report["candidates"]) == 40
    kept = {c["label"] for c in report["candidates"] if c["kept"]}
    assert {p.stem for p in (out / "kept").glob("*.png")} == kept
    removed = [c for c in report["candidates"] if not c["kept"]]
    assert sum(int(c["label"][3:]) >= 20 for c in removed) >= 18          # the copies of person 3
    assert all(c["scores"]["synth"]["identity"] == 3 for c in removed if int(c["label"][3:]) >= 20)
    m = report["matchers"]["synth"]
    assert m["threshold_source"].startswith("calibration file") and m["supported"]
    assert m["removed"]["count"] == len(removed) and report["removed"]["count"] == len(removed)
    page = (out / "filter.html").read_text()
    assert "removed as a likeness" in page and "<img" not in page       # no image without the flag
    assert "no (epsilon, delta) guarantee" in report["privacy"] and "not post-processing" in page
    assert f"kept {len(kept)} of 40 candidates" in stdout


def test_show_training_images_puts_the_removed_pairs_on_the_page(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run(capsys, "--generated", files["candidates"], "--training", files["train"], "--matcher",
                       f"synth={files['weights']}", "--out", out, "--cache", tmp_path / "cache",
                       "--show-training-images")
    assert code == 0, err
    removed = json.loads((out / "filter.json").read_text())["removed"]["count"]
    assert len(list((out / "removed").glob("*.png"))) == removed
    assert (out / "filter.html").read_text().count('class="face"') == 2 * min(removed, 16)


def test_generator_renders_the_next_seeds_until_count_pass(files, tmp_path, capsys):
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=256, channel_max=16)).eval()       # untrained: 32 px noise
    ckpt = tmp_path / "net.pt"
    save_networks(ckpt, {"G_ema": G})
    out = tmp_path / "out"
    train = files["train"]
    code, _, err = run(capsys, "--generator", ckpt, "--seeds", "100-", "--count", "5", "--training", train,
                       "--matcher", f"synth={files['uncalibrated']}", "--fmr", "1e-2", "--out", out,
                       "--cache", tmp_path / "cache", "--batch", "4")
    assert code == 0, err
    report = json.loads((out / "filter.json").read_text())
    assert report["kept"] == 5
    labels = [c["label"] for c in report["candidates"]]
    assert labels == [f"seed{s:04d}" for s in range(100, 100 + len(labels))]
    assert report["matchers"]["synth"]["threshold_source"] == "training set (R-R pairs)"
    first = report["candidates"][0]["label"]
    want = generate(G, [int(first[4:])], "cpu")[0]
    if report["candidates"][0]["kept"]:
        assert np.array_equal(np.asarray(Image.open(out / "kept" / f"{first}.png")), want)


@pytest.mark.parametrize("case, needle", [
    ("no_matcher", "no --matcher given"),
    ("unsupported_fmr", "--fmr 0.0001 for synth: FMR 0.0001 is not supported"),
    ("uncalibrated_fmr", "no operating point at FMR 0.005"),
    ("count_zero", "--count 0: must be at least 1"),
    ("existing_out", "exists and is not empty"),
    ("resume_nothing", "no filter run to continue"),
])
def test_bad_input_is_one_line_and_exit_2(files, tmp_path, capsys, case, needle):
    out = tmp_path / "out"
    base = ["--generated", files["candidates"], "--training", files["train"], "--out", out,
            "--cache", tmp_path / "cache"]
    matcher = ["--matcher", f"synth={files['weights']}"]
    argv = {"no_matcher": base,
            # 30 people x 10 images give 43,500 impostor pairs: FMR 1e-4 needs 100,000
            "unsupported_fmr": base + ["--matcher", f"synth={files['uncalibrated']}", "--fmr", "1e-4"],
            "uncalibrated_fmr": base + matcher + ["--fmr", "5e-3"],
            "count_zero": base + matcher + ["--count", "0"],
            "existing_out": base + matcher,
            "resume_nothing": base + matcher + ["--resume"]}[case]
    if case == "existing_out":
        out.mkdir()
        (out / "mine.txt").write_text("keep me")
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    if case == "existing_out":
        assert (out / "mine.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_a_folder_source_resumes_at_any_candidate(files):
    from leakguard.audit.images import ImageFiles
    from leakguard.cli.filter import ImageSetSource
    images = ImageFiles(files["candidates"])
    whole = torch.cat(list(images.batches(7)))                              # [40, 3, H, W]
    labels, pixels = next(ImageSetSource(images).batches(13, 5))
    assert labels == [f"img{i:03d}" for i in range(13, 18)] and torch.equal(pixels, whole[13:18])
    assert [len(lb) for lb, _ in ImageSetSource(images).batches(30, 4)] == [4, 4, 2]
