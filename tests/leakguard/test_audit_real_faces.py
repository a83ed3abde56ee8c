"""The real-face scenario of issue 12, rebuilt from photos that packages ship: eight people cropped
with dlib's detector, a training set of five of them (four augmented images each), a memorising
"generator" (new augmentations of the training people) and three people never in training, audited
with the dlib matcher. At dlib's published operating point (distance 0.6) the memorising case leaks
completely and the new people almost never; with thresholds from five people's own pairs, the
report and the terminal say that no FMR is supported."""
import json

import numpy as np
import pytest
from PIL import Image

from tests.leakguard import faces
from training.cli import main
from training.data.zip_format import DatasetZipWriter, Record

pytest.importorskip("dlib")
SIZE = 128
# Which five are in training: people 4 and 5 (neighbours in t1.jpg) are 0.61 apart under dlib, at its
# published point, so splitting them would put a near twin of a training person among the new people
# (3 of 15 of its images then match at 0.6). They stay together, on the never-in-training side.
MEMBERS, NEW_PEOPLE = (0, 1, 2, 3, 7), (4, 5, 6)


def augment(face: np.ndarray, seed: int) -> np.ndarray:
    """A new photo of the same person: a shifted 128 px window, maybe mirrored, brighter or darker."""
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, face.shape[0] - SIZE + 1, size=2)
    out = face[y:y + SIZE, x:x + SIZE].astype(np.float32) * rng.uniform(0.85, 1.15)
    out = out[:, ::-1] if rng.random() < 0.5 else out
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


def save_folder(folder, images) -> None:
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"face{i:02d}.png")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_faces")
    crops = faces.face_crops(SIZE + 16)                       # 8 people, [144, 144, 3]
    with DatasetZipWriter(root / "train.zip") as zf:          # five people, four images each
        for person in MEMBERS:
            for k in range(4):
                zf.add(Record(augment(crops[person], 100 * person + k), identity=person))
    save_folder(root / "memorised", [augment(crops[p], 1000 + 10 * p + k) for p in MEMBERS for k in range(3)])
    save_folder(root / "new_people", [augment(crops[p], 2000 + 10 * p + k) for p in NEW_PEOPLE for k in range(5)])
    return root


def audit(scenario, generated, out, capsys):
    code = main(["audit", "--generated", str(scenario / generated), "--training", str(scenario / "train.zip"),
                 "--matcher", "dlib", "--alignment", "detect", "--threshold", "dlib=published",
                 "--cache", str(scenario / "cache"), "--bootstrap", "50", "--out", str(scenario / out)])
    assert code == 0
    report = json.loads((scenario / out / "report.json").read_text())
    return report["matchers"]["dlib"], capsys.readouterr()


def test_the_published_point_catches_the_memorising_generator(scenario, capsys):
    section, _ = audit(scenario, "memorised", "mem", capsys)
    assert section["published"]["leak_rate"] == 1.0 and section["published"]["leaking_samples"] == 15
    cached = sorted(p.name for p in (scenario / "cache").glob("*.npy"))
    assert len(cached) == 2 and all("_raw-" in name for name in cached), cached   # one dlib pass per image set


def test_people_never_in_training_rarely_match_at_the_published_point(scenario, capsys):
    section, printed = audit(scenario, "new_people", "new", capsys)
    assert section["published"]["leaking_samples"] <= 1          # at most 1 of the 15 images
    assert section["published"]["rule"] == "Euclidean distance of raw features <= 0.6"
    assert "at the published point (Euclidean distance of raw features <= 0.6)" in printed.out
    # The training set's own pairs: 5 people support no FMR, and every surface says so.
    row = next(r for r in section["leakage"] if r["fmr"] == 0.01)
    assert not row["supported"] and "5 identities (it needs 30)" in row["why_unsupported"]
    assert "FMR 0.01 is not supported by" in printed.err and "5 identities (it needs 30)" in printed.err
    assert "unsupported at FMR 0.01" in printed.out
    html = (scenario / "new" / "report.html").read_text()
    assert "published operating point" in html and "† FMR 0.01 is not supported by" in html


def ffhq_aligned(photo: np.ndarray, size: int = 128) -> np.ndarray:
    """The photo warped so its 68 landmarks sit on the FFHQ template, as StyleGAN's data are."""
    import torch

    from leakguard.matchers import align
    from leakguard.matchers.landmarks import DlibLandmarks
    x = faces.as_batch(photo)
    A = align.umeyama(DlibLandmarks()(x)[0], align.ffhq_landmarks(size, size))
    crop = align.warp(x.float() / 127.5 - 1, A, (size, size))[0]                      # [3, size, size]
    return ((crop.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def test_the_alignment_check_warns_on_crops_that_are_not_ffhq_aligned(scenario, capsys, tmp_path):
    from leakguard.audit.alignment import ASSUMED_BOX, alignment_warning, detected_boxes, offset
    from leakguard.audit.images import ImageFiles
    crops = ImageFiles(scenario / "train.zip")                # detector crops with a margin
    warning = alignment_warning(crops, "ffhq")
    assert warning.startswith("alignment 'ffhq' assumes the face box (0.195, 0.28, 0.805, 0.89)")
    assert "pass --alignment detect" in warning
    assert alignment_warning(crops, "detect") is None          # the matcher finds each face itself
    save_folder(tmp_path / "aligned", [ffhq_aligned(p) for p in faces.people_photos()])
    aligned = ImageFiles(tmp_path / "aligned")
    boxes, looked = detected_boxes(aligned)
    assert len(boxes) >= looked - 1                            # checked, not skipped for want of faces
    assert max(offset(b, ASSUMED_BOX["ffhq"]) for b in boxes) < 0.1
    assert alignment_warning(aligned, "ffhq") is None
    # The audit prints it, with the matcher's name.
    assert main(["audit", "--generated", str(scenario / "memorised"), "--training", str(scenario / "train.zip"),
                 "--matcher", "dlib", "--cache", str(scenario / "cache"), "--bootstrap", "20",
                 "--out", str(tmp_path / "r")]) == 0
    assert "warning: dlib: alignment 'ffhq' assumes the face box" in capsys.readouterr().err
