"""Which fakes are faces, and the leak rate among them (issue 28, item 6): the k-NN manifold mask against a
pair-by-pair numpy loop and against precision; the leak rate among faces, its interval and the share's
interval against hand computations and scipy; dlib's detector on a photo and on noise; `leakguard audit`
with --features and with the dlib matcher, and its bad inputs."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import binomtest

from leakguard.audit.audit import AuditInputs, AuditSettings, run_audit
from leakguard.audit.detection import detected_faces, has_detector
from leakguard.audit.faces import MIN_FACE_SHARE, FaceTest, face_entry, faces_section, leak_among_faces
from leakguard.audit.images import ImageFiles, ImageTensor
from leakguard.audit.report import render_html
from leakguard.audit.store import EmbeddingStore
from leakguard.fidelity.metrics import in_real_manifold, manifold_masks, precision_recall
from leakguard.fidelity.scores import fidelity_scores
from leakguard.matchers.synth import SynthMatcher
from tests.synth_matcher import RES
from training.cli import main
from training.data.build import export_zip
from training.synthfaces import SynthFaces


def oracle_mask(real: np.ndarray, fake: np.ndarray, k: int) -> np.ndarray:
    """Each fake inside the ball of some real row reaching its k-th nearest other real row: pair by pair."""
    radii = [sorted(np.linalg.norm(real[i] - real[j]) for j in range(len(real)) if j != i)[k - 1]
             for i in range(len(real))]
    return np.array([any(np.linalg.norm(f - r) <= rad for r, rad in zip(real, radii)) for f in fake])


class Extractor:
    name, metric_prefix, version = "toy", "fd_toy", "toy-1"


@pytest.mark.parametrize("k", [1, 3, 5])
def test_the_mask_equals_a_brute_force_oracle_and_its_mean_is_the_precision(k):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(40, 6))
    fake = np.concatenate([rng.normal(size=(15, 6)), rng.normal(size=(15, 6)) * 3 + 2])  # half far off
    fake[0] = real[7]                                          # a copy of a real row: inside, at distance 0
    mask = in_real_manifold(real, fake, k=k)
    expected = oracle_mask(real, fake, k)
    assert mask.dtype == bool and mask.shape == (30,) and 0 < expected.sum() < 30 and mask[0]
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(in_real_manifold(torch.from_numpy(real), fake, k=k, batch=7), mask)   # chunked
    precision, _ = precision_recall(real, fake, k=k)
    assert mask.mean() == precision                            # the same computation, bit for bit
    masks = {}
    scores = fidelity_scores(real, fake, Extractor(), kid_subsets=3, kid_subset_size=10, k=k, in_manifold=masks)
    np.testing.assert_array_equal(masks["fd_toy"], mask)
    assert scores["fd_toy_precision"] == precision and manifold_masks(real, fake, k=k)[1].mean() == scores[
        "fd_toy_recall"]


def test_the_mask_needs_more_real_rows_than_k_and_names_what_is_wrong():
    x = np.random.default_rng(0).normal(size=(4, 3))
    assert in_real_manifold(x, x[:1], k=3).tolist() == [True]   # one fake is enough without recall
    with pytest.raises(ValueError, match=r"in_real_manifold: k=4 needs more than k rows.*got 4 real; pass k <= 3"):
        in_real_manifold(x, x, k=4)
    with pytest.raises(ValueError, match="in_real_manifold: real and fake have different feature dimensions"):
        in_real_manifold(x, x[:, :2])


# Six fakes: best scores under one matcher, and which are faces.
BEST = np.array([0.9, 0.2, 0.8, 0.95, 0.1, 0.7])
FACES = np.array([True, True, False, True, False, True])
ROWS = [{"fmr": 1e-2, "threshold": 0.5, "supported": True, "leak_rate": 4 / 6},
        {"fmr": 1e-3, "threshold": 0.75, "supported": False, "leak_rate": 3 / 6}]


def test_the_leak_rate_among_faces_equals_a_hand_computation():
    rows = leak_among_faces(BEST, FACES, ROWS, resamples=200, seed=3)
    # faces' best scores: 0.9, 0.2, 0.95, 0.7; at 0.5 three of four leak, at 0.75 two of four
    assert [(r["fmr"], r["threshold"], r["supported"], r["leaking_samples"], r["leak_rate"]) for r in rows] == [
        (1e-2, 0.5, True, 3, 0.75), (1e-3, 0.75, False, 2, 0.5)]
    # the percentile bootstrap over the four faces, drawn as metrics.bootstrap draws them
    among, rng, rates = np.array([0.9, 0.2, 0.95, 0.7]), np.random.default_rng(3), []
    for _ in range(200):
        draw = among[rng.integers(0, 4, 4)]
        rates.append([np.mean(draw >= 0.5), np.mean(draw >= 0.75)])
    low, high = np.quantile(np.array(rates), [0.025, 0.975], axis=0)
    assert [r["leak_rate_ci"] for r in rows] == [[low[0], high[0]], [low[1], high[1]]]

    entry = face_entry(FaceTest("manifold", "fd_toy", "a rule", FACES, {"k": 3}), {"m": BEST}, {"m": ROWS}, 200, 3)
    assert (entry["count"], entry["of"], entry["share"], entry["k"], entry["mostly_not_faces"]) == (4, 6, 4 / 6, 3,
                                                                                                      False)
    wilson = binomtest(4, 6).proportion_ci(confidence_level=0.95, method="wilson")
    assert entry["share_ci"] == pytest.approx([wilson.low, wilson.high], abs=1e-12)
    assert entry["leakage"] == {"m": rows}


def test_no_face_means_no_leak_rate_and_mostly_not_faces():
    noise = FaceTest("detector", "dlib", "a rule", np.zeros(6, bool))
    section = faces_section([noise, FaceTest("manifold", "fd_toy", "r", FACES)], {"m": BEST}, {"m": ROWS}, 50)
    assert list(section) == ["manifold", "detector"]          # manifold first, whatever order the tests came in
    e = section["detector"]["dlib"]
    assert (e["count"], e["share"], e["mostly_not_faces"]) == (0, 0.0, True) and e["share_ci"][0] == 0.0
    assert [(r["leak_rate"], r["leak_rate_ci"], r["leaking_samples"]) for r in e["leakage"]["m"]] == [(None, None, 0)] * 2
    assert section["manifold"]["fd_toy"]["mostly_not_faces"] is (4 / 6 < MIN_FACE_SHARE)
    assert faces_section([], {}, {}) == {}


def test_bad_masks_and_mismatched_matchers_are_refused():
    with pytest.raises(ValueError, match=r"a bool mask of the 6 generated faces, got bool of shape \(5,\)"):
        leak_among_faces(BEST, FACES[:5], ROWS)
    with pytest.raises(ValueError, match="a bool mask of the 6 generated faces, got int64"):
        leak_among_faces(BEST, FACES.astype(np.int64), ROWS)
    with pytest.raises(ValueError, match=r"best scores of \['m'\] but leak rows of \['n'\]"):
        face_entry(FaceTest("manifold", "x", "r", FACES), {"m": BEST}, {"n": ROWS})
    with pytest.raises(ValueError, match="kind 'pixels'"):
        face_entry(FaceTest("pixels", "x", "r", FACES), {}, {})


# --- dlib's detector -------------------------------------------------------------------------------

def noise_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, [size, size, 3], dtype=np.uint8) for _ in range(n)]


def as_tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def crops():
    pytest.importorskip("dlib")
    from tests.leakguard import faces
    return [np.asarray(Image.fromarray(c).resize((128, 128))) for c in faces.face_crops(144)]   # 8 people


@pytest.fixture(scope="module")
def dlib_matcher():
    from leakguard.matchers.dlib_matcher import DlibMatcher
    return DlibMatcher(alignment="none")


def test_dlib_finds_the_faces_in_photos_and_none_in_noise(crops, dlib_matcher):
    images = ImageTensor(as_tensor([crops[0], *noise_images(2, 128), crops[3]]), name="mixed")
    assert has_detector(dlib_matcher) and detected_faces(images, dlib_matcher).tolist() == [True, False, False, True]
    synth = object.__new__(SynthMatcher)
    assert not has_detector(synth)
    with pytest.raises(ValueError, match="has no face detector"):
        detected_faces(images, synth)


def test_an_audit_with_dlib_reports_its_share_of_faces_and_the_leak_rate_among_them(crops, dlib_matcher, tmp_path):
    train = [np.roll(crops[p], s, axis=1) for p in range(4) for s in (0, 3)]          # 4 people, 2 images each
    training = ImageTensor(as_tensor(train), name="train", identities=np.repeat(np.arange(4), 2))
    generated = ImageTensor(as_tensor([crops[0], crops[5], *noise_images(3, 128, 1)]), name="fakes")
    best = {}
    report = run_audit(AuditInputs(generated=generated, training=training), [dlib_matcher],
                       EmbeddingStore(tmp_path / "cache"), AuditSettings(bootstrap=40), best_scores=best)
    e = report["faces"]["detector"]["dlib"]
    assert list(report["faces"]) == ["detector"]               # no extractor given: no manifold test
    assert (e["count"], e["of"], e["share"], e["mostly_not_faces"]) == (2, 5, 0.4, True)
    faces = np.array([True, True, False, False, False])
    for r, audit_row in zip(e["leakage"]["dlib"], report["matchers"]["dlib"]["leakage"]):
        assert (r["fmr"], r["threshold"]) == (audit_row["fmr"], audit_row["threshold"])
        assert r["leak_rate"] == np.mean(best["dlib"][faces] >= r["threshold"])
    html = render_html(report)
    assert "Are the generated images faces?" in html and "Most generated images are not faces" in html
    assert "face detector dlib (40.00%)" in html


# --- `leakguard audit --features` ------------------------------------------------------------------

@pytest.fixture(scope="module")
def audit_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces_audit")
    train = export_zip(root / "train.zip", SynthFaces(RES, num_identities=8, images_per_identity=4))
    fakes = root / "fakes"
    fakes.mkdir()
    people = SynthFaces(RES, num_identities=4, images_per_identity=2, identity_offset=40).render_all()  # [8, 3, H, W]
    for i, img in enumerate([*people.transpose(0, 2, 3, 1), *noise_images(6, RES, 2)]):        # 8 faces of new people, 6 of noise
        Image.fromarray(np.ascontiguousarray(img)).save(fakes / f"{i:02d}.png")
    return root, train, fakes


def audit_args(root, train, fakes, weights, *extra):
    return ["audit", "--generated", str(fakes), "--training", str(train), "--matcher", f"synth={weights}",
            "--cache", str(root / "cache"), "--bootstrap", "30", *extra]


def test_audit_with_features_reports_the_share_in_the_manifold(audit_files, synth_matcher_weights, capsys):
    root, train, fakes = audit_files
    out = root / "report"
    assert main(audit_args(root, train, fakes, synth_matcher_weights, "--features", f"synth={synth_matcher_weights}",
                           "--out", str(out))) == 0
    report = json.loads((out / "report.json").read_text())
    e = report["faces"]["manifold"]["fd_synth"]
    m = SynthMatcher(weights=synth_matcher_weights)
    real, fake = m.embed(torch.cat(list(ImageFiles(train).batches(64)))), m.embed(torch.cat(list(
        ImageFiles(fakes).batches(64))))
    expected = in_real_manifold(real.double(), fake.double(), k=3)
    assert (e["count"], e["of"], e["k"], e["extractor"]) == (int(expected.sum()), 14, 3, "synth")
    assert e["share"] == precision_recall(real.double(), fake.double(), k=3)[0]
    for r, audit_row in zip(e["leakage"]["synth"], report["matchers"]["synth"]["leakage"]):
        assert r["fmr"] == audit_row["fmr"] and r["leaking_samples"] <= audit_row["leaking_samples"]
        assert r["leak_rate"] == (r["leaking_samples"] / e["count"] if e["count"] else None)
    assert "detector" not in report["faces"]                  # the synth matcher has no detector
    printed = capsys.readouterr().out
    assert f"faces by manifold fd_synth: {e['count']} of 14" in printed
    assert "Are the generated images faces?" in (out / "report.html").read_text()


def test_audit_without_features_or_detector_has_no_faces(audit_files, synth_matcher_weights, tmp_path):
    root, train, fakes = audit_files
    assert main(audit_args(root, train, fakes, synth_matcher_weights, "--out", str(tmp_path / "r"))) == 0
    assert "faces" not in json.loads((tmp_path / "r" / "report.json").read_text())
    assert "Are the generated images faces?" not in (tmp_path / "r" / "report.html").read_text()


def test_bad_features_are_refused_naming_them(audit_files, synth_matcher_weights, tmp_path, capsys):
    root, train, fakes = audit_files
    with pytest.raises(SystemExit):
        main(audit_args(root, train, fakes, synth_matcher_weights, "--features", "vggface", "--out", str(tmp_path)))
    err = capsys.readouterr().err
    assert "--features vggface: unknown feature extractor 'vggface'; valid: inception, synthfaces" in err
    missing = tmp_path / "missing.pt"
    assert main(audit_args(root, train, fakes, synth_matcher_weights, "--features", f"synth={missing}",
                           "--out", str(tmp_path / "r"))) == 2
    assert f"--features synth={missing}: file not found" in capsys.readouterr().err
    assert not (tmp_path / "r" / "report.json").exists()
