"""DlibMatcher on real faces: face_recognition (same boxes, same weights) as the oracle, dlib's 0.6 rule
for same and different people, the FFHQ box, missing faces, missing packages."""
import importlib.util
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from leakguard.matchers import align
from leakguard.matchers.dlib_matcher import FFHQ_BOX, DlibMatcher, NoFaceFound, largest_face
from leakguard.matchers.weights import WeightsMissing
from tests.leakguard import faces

pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def fr():
    """face_recognition, the oracle (installed by the Makefile with --no-deps). Importing it sets PIL's
    process-wide LOAD_TRUNCATED_IMAGES, which would let truncated files pass later dataset tests: the
    flag is put back when this module's tests are done."""
    from PIL import ImageFile
    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")            # face_recognition_models imports pkg_resources
            import face_recognition
    except (ImportError, SystemExit) as e:         # it quit()s when face_recognition_models fails to import
        pytest.fail(f"face_recognition is not importable ({e!r}); `make venv` installs it with --no-deps, and "
                    "face_recognition_models needs setuptools<81 for pkg_resources")
    yield face_recognition
    ImageFile.LOAD_TRUNCATED_IMAGES = truncated


@pytest.fixture(scope="module")
def detect():
    return DlibMatcher(alignment="detect")


@pytest.fixture(scope="module")
def people():
    return faces.people_photos()


@pytest.fixture(scope="module")
def people_descriptors(detect, people):
    return torch.cat([detect.descriptors(faces.as_batch(p)) for p in people])   # [8, 128]


def test_known_boxes_equal_face_recognition(fr):
    photo = np.ascontiguousarray(faces.t1()[:520])              # the band with the six faces
    locations = fr.face_locations(photo)                        # (top, right, bottom, left)
    boxes = [(left, top, right, bottom) for top, right, bottom, left in locations]
    expected = np.array(fr.face_encodings(photo, locations))    # [6, 128]
    m = DlibMatcher(alignment="none")
    got = m.descriptors(faces.as_batch(photo).expand(len(boxes), -1, -1, -1), boxes=boxes)
    assert got.shape == (6, 128) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)


def test_detect_equals_face_recognition_on_the_largest_face(fr, detect):
    photo = faces.astronaut()
    locations = fr.face_locations(photo)
    t, r, b, l = max(locations, key=lambda c: (c[1] - c[3]) * (c[2] - c[0]))
    expected = fr.face_encodings(photo, [(t, r, b, l)])[0]
    got = detect.descriptors(faces.as_batch(photo))[0]
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)
    # The float [-1, 1] form of the same pixels gives the same descriptor.
    x = faces.as_batch(photo).float() / 127.5 - 1
    np.testing.assert_allclose(detect.descriptors(x)[0].numpy(), expected, rtol=0, atol=1e-6)


def test_same_face_flipped_or_shifted_matches(detect, people_descriptors):
    photo = faces.astronaut()
    moved = faces.as_batch(photo[:, ::-1], np.roll(photo, (9, -13), axis=(0, 1)))
    distance = (detect.descriptors(moved) - people_descriptors[0]).norm(dim=1)
    assert (distance < DlibMatcher.TOLERANCE).all(), distance


def test_different_people_do_not_match(people_descriptors):
    distance = torch.cdist(people_descriptors, people_descriptors)
    off_diagonal = distance[~torch.eye(len(distance), dtype=torch.bool)]
    assert (off_diagonal > DlibMatcher.TOLERANCE).all(), distance


def test_embed_is_unit_normalised_descriptors(detect, people):
    x = faces.as_batch(people[-1])
    e = detect.embed(x)
    assert e.shape == (1, 128) and e.dtype == torch.float32 and detect.embedding_dim == 128
    torch.testing.assert_close(e, F.normalize(detect.descriptors(x).float(), dim=1))


def test_ffhq_box_is_where_dlib_finds_ffhq_aligned_faces(people, people_descriptors):
    """Each person FFHQ-aligned (landmarks from the 68-point predictor): dlib's detector finds the face
    where FFHQ_BOX says, and alignment='ffhq' identifies every person among the eight photos."""
    from leakguard.matchers.landmarks import DlibLandmarks
    import dlib
    landmarks, detector, size = DlibLandmarks(), dlib.get_frontal_face_detector(), 256
    aligned, found = [], []
    for p in people:
        x = faces.as_batch(p)
        A = align.umeyama(landmarks(x)[0], align.ffhq_landmarks(size, size))
        crop = align.warp(x.float() / 127.5 - 1, A, (size, size))
        aligned.append(crop)
        rgb = ((crop[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        r = largest_face(detector, rgb, upsample=1)
        if r is not None:
            found.append([r.left() / size, r.top() / size, (r.right() + 1) / size, (r.bottom() + 1) / size])
    # Every face scores >= 0.8 against the detector's threshold 0 when run alone, yet one full-suite
    # run in three missed one face (not reproduced since); the box statistics need most faces, not all.
    assert len(found) >= len(people) - 1, f"dlib found {len(found)} of {len(people)} FFHQ-aligned faces"
    found = np.array(found)
    assert np.abs(found.mean(0) - FFHQ_BOX).max() < 0.02, found
    assert np.abs(found - FFHQ_BOX).max() < 0.08, found
    d = DlibMatcher(alignment="ffhq").descriptors(torch.cat(aligned))
    distance = torch.cdist(d, people_descriptors)                 # [8 aligned, 8 photos]
    assert (distance.argmin(1) == torch.arange(len(people))).all(), distance
    assert (distance.diagonal() < DlibMatcher.TOLERANCE).all(), distance


def test_alignment_none_is_the_whole_image_box(people):
    x = faces.as_batch(people[1])
    h, w = x.shape[2:]
    m = DlibMatcher(alignment="none")
    torch.testing.assert_close(m.descriptors(x), m.descriptors(x, boxes=[(0, 0, w - 1, h - 1)]))


def test_no_face_raises_or_gives_nan():
    grey = torch.full([2, 3, 64, 64], 128, dtype=torch.uint8)
    with pytest.raises(NoFaceFound, match=r"no face in 2 of 2 images.*on_missing='nan'"):
        DlibMatcher(alignment="detect").embed(grey)
    m = DlibMatcher(alignment="detect", on_missing="nan")
    e = m.embed(grey)
    assert e.shape == (2, 128) and e.isnan().all() and m.faces_missing == 2


def test_bad_arguments_name_the_choices():
    with pytest.raises(ValueError, match="ffhq, none, detect"):
        DlibMatcher(alignment="mtcnn")
    with pytest.raises(ValueError, match="error, nan"):
        DlibMatcher(on_missing="skip")
    with pytest.raises(ValueError, match=r"boxes must be \[N, 4\]"):
        DlibMatcher().descriptors(torch.zeros([2, 3, 16, 16], dtype=torch.uint8), boxes=[(0, 0, 15, 15)])


def test_missing_weights_and_packages_are_named(tmp_path, monkeypatch):
    with pytest.raises(WeightsMissing, match="nothing.dat"):
        DlibMatcher(weights=tmp_path / "nothing.dat")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(ImportError, match="pip install dlib-bin face-recognition-models"):
        DlibMatcher()
