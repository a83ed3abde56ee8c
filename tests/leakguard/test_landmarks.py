"""DlibLandmarks: five points in ARCFACE_112's order and pixel convention, on real photos."""
import numpy as np
import pytest
import torch

from leakguard.matchers import align
from leakguard.matchers.dlib_matcher import NoFaceFound
from leakguard.matchers.torch_matcher import TorchMatcher
from tests.leakguard import faces

pytest.importorskip("dlib")
from leakguard.matchers.landmarks import DlibLandmarks  # noqa: E402


@pytest.fixture(scope="module")
def landmarks():
    return DlibLandmarks()


class TemplateCrop(TorchMatcher):
    """A TorchMatcher with no network: its crop is what alignment='detect' shows a network."""
    name = "template_crop"
    input_size = (112, 112)
    template = align.centred(align.ARCFACE_112)

    def __init__(self, detector):
        super().__init__(torch.nn.Identity(), alignment="detect", detector=detector)

    @property
    def embedding_dim(self):
        return 3 * 112 * 112


def test_points_are_in_template_order_and_place(landmarks):
    photo = faces.astronaut()
    p = landmarks(faces.as_batch(photo))
    assert p.shape == (1, 5, 2) and p.dtype == np.float64
    eye_l, eye_r, nose, mouth_l, mouth_r = p[0]
    assert eye_l[0] < eye_r[0] and mouth_l[0] < mouth_r[0]                 # image-left first, as ARCFACE_112
    assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])  # eyes above nose above mouth
    assert eye_l[0] < nose[0] < eye_r[0]
    # Inside the face dlib's detector boxes in this photo (left 175, top 76, right 265, bottom 166).
    assert (p[0] > [175, 76]).all() and (p[0] < [266, 167]).all()
    # Close to ARCFACE_112 up to a similarity: a frontal face.
    A = align.umeyama(p[0], align.centred(align.ARCFACE_112))
    assert np.abs(align.apply(A, p[0]) - align.centred(align.ARCFACE_112)).max() < 6


def test_mirrored_photo_gives_mirrored_points(landmarks):
    """Flipping the image maps x to W - x in the i + 0.5 convention, and swaps left and right points."""
    photo = faces.astronaut()
    p, q = landmarks(faces.as_batch(photo, photo[:, ::-1]))
    mirrored = np.stack([photo.shape[1] - q[:, 0], q[:, 1]], axis=1)[[1, 0, 2, 4, 3]]
    assert np.abs(mirrored - p).max() < 1.5, mirrored - p


def test_detect_crop_lands_on_the_template(landmarks):
    """alignment='detect' warps the face onto ARCFACE_112: landmarks found again on the 112 x 112
    crop lie near the template."""
    x = faces.as_batch(faces.astronaut(), np.roll(faces.astronaut(), (40, -60), axis=(0, 1)))
    crops = TemplateCrop(landmarks).crop(x.float() / 127.5 - 1)     # [2, 3, 112, 112]
    points, again = landmarks(x), landmarks(crops)
    template = align.centred(align.ARCFACE_112)
    for p, q in zip(points, again):
        A = align.umeyama(p, template)
        # The crop shows each point where the similarity sends it ...
        assert np.abs(align.apply(A, p) - q).max() < 1.5
        # ... so fitting the template to the crop's points is nearly the identity (the rest is how
        # this face differs from the template's).
        B = align.umeyama(q, template)
        assert np.abs(B[:, :2] - np.eye(2)).max() < 0.02 and np.abs(B[:, 2]).max() < 1.5, B


def test_no_face(landmarks):
    grey = torch.full([2, 3, 64, 64], 128, dtype=torch.uint8)
    with pytest.raises(NoFaceFound, match="no face in 2 of 2"):
        landmarks(grey)
    assert np.isnan(DlibLandmarks(on_missing="nan")(grey)).all()
