"""Alignment: Umeyama recovers a known similarity; the warp puts input point p at output point A p,
keeps an image under the identity, is differentiable in the pixels; FFHQ landmarks follow the
FFHQ alignment's construction."""
import numpy as np
import pytest
import torch

from leakguard.matchers import align


def similarity(scale, angle, tx, ty):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def test_umeyama_recovers_a_similarity_and_rejects_bad_shapes():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, [5, 2])
    A = similarity(0.7, 0.3, 12.0, -4.0)
    np.testing.assert_allclose(align.umeyama(src, align.apply(A, src)), A, atol=1e-10)
    # A reflection is not a similarity: the fit stays a rotation (det > 0).
    fit = align.umeyama(src, src * [-1, 1])
    assert np.linalg.det(fit[:, :2]) > 0
    with pytest.raises(ValueError, match="point sets"):
        align.umeyama(src, src[:3])


def test_identity_warp_returns_the_image():
    img = torch.rand(2, 3, 16, 20)
    out = align.warp(img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (16, 20))
    torch.testing.assert_close(out, img, atol=1e-5, rtol=0)


def test_a_point_lands_where_the_transform_sends_it():
    """A smooth blob centred at input point p = (41, 21) shows up centred at A p in the crop."""
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")  # pixel centres
    img = torch.exp(-((xs - 41.0) ** 2 + (ys - 21.0) ** 2) / (2 * 4.0 ** 2))[None, None]
    A = similarity(0.5, 0.4, 3.0, 10.0)
    out = align.warp(img, A, (48, 48))[0, 0]
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    centre = np.array([(out * xs).sum() / out.sum(), (out * ys).sum() / out.sum()])
    np.testing.assert_allclose(centre, align.apply(A, [[41.0, 21.0]])[0], atol=0.02)


def test_large_inputs_are_prefiltered_not_aliased():
    """A 1-pixel checkerboard shrunk 8x averages to grey instead of aliasing to black or white."""
    board = (torch.arange(256)[:, None] + torch.arange(256)[None, :]) % 2 * 2.0 - 1  # [-1, 1]
    img = board.expand(1, 3, 256, 256).contiguous()
    out = align.warp(img, np.array([[0.125, 0, 0], [0, 0.125, 0]]), (32, 32))
    assert out[..., 4:-4, 4:-4].abs().max() < 0.05


def test_warp_is_differentiable_per_image():
    img = torch.rand(2, 3, 32, 32, requires_grad=True)
    A = np.stack([similarity(1.0, 0.0, 0.0, 0.0), similarity(0.8, 0.1, 2.0, 1.0)])
    out = align.warp(img, A, (24, 24))
    (grad,) = torch.autograd.grad(out[1].sum(), img)
    assert grad[0].abs().sum() == 0 and grad[1].abs().sum() > 0   # each crop reads only its own image


def test_ffhq_landmarks_follow_the_ffhq_construction():
    """Eye midpoint 0.1 |e2m| above the centre, crop half side = 1.8 |e2m| (the mouth term dominates)."""
    pts = align.ffhq_landmarks(1024, 1024) / 1024
    eyes, mouth = pts[:2].mean(0), pts[3:].mean(0)
    e2m = np.linalg.norm(mouth - eyes)
    np.testing.assert_allclose(eyes + 0.1 * (mouth - eyes), [0.5, 0.5], atol=1e-6)
    assert 1.8 * e2m == pytest.approx(0.5)
    assert 2 * np.linalg.norm(pts[1] - pts[0]) < 1.8 * e2m
    assert pts[0, 0] < pts[2, 0] < pts[1, 0] and pts[2, 1] < mouth[1]


def test_ffhq_to_arcface_template_maps_landmarks_exactly():
    A = align.ffhq_to_template(256, 256, align.centred(align.ARCFACE_112))
    np.testing.assert_allclose(align.apply(A, align.ffhq_landmarks(256, 256)), align.centred(align.ARCFACE_112),
                               atol=1e-6)
