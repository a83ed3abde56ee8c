"""The ADA pipeline against oracles: exact blits (flip, quarter turns, whole-pixel shifts), analytic
resampling of smooth functions, colour ops by their invariants, op frequencies by binomial bounds,
replay from torch's RNG state, and first and second derivatives in float64."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.augment import AUGMENT_PRESETS, AugmentPipe, make_augment_pipe
from training.augment.color import ColorSpec, sample_color
from training.augment.geometry import (GeomSpec, apply_geometry, blit, is_blit, resample, rotate,
                                       sample_inverse_geometry, scale, sym6_taps, translate)

F64 = torch.float64


def pipe_with(p: float, **ops) -> AugmentPipe:
    pipe = AugmentPipe(**ops)
    pipe.p.fill_(p)
    return pipe


def matrices(*mats: torch.Tensor) -> torch.Tensor:
    return torch.cat(mats).to(F64)  # [n, 3, 3]


def t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def centred_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates with the origin at the image centre, as augment_geometry uses."""
    y, x = torch.meshgrid(torch.arange(height, dtype=F64), torch.arange(width, dtype=F64), indexing="ij")
    return x - (width - 1) / 2, y - (height - 1) / 2


def smooth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Two plane waves, |k| <= 0.41 rad/px (a quarter of Nyquist and less)."""
    return torch.cos(0.35 * x + 0.2 * y + 0.3) + 0.5 * torch.sin(0.15 * x - 0.3 * y)


# Resampling error on `smooth`, bounded term by term:
#   bilinear interpolation at 2x (spacing h = 1/2 px): <= h^2/8 (max|f_xx| + max|f_yy|)
#     = (1/32) (0.35^2 + 0.5 * 0.15^2 + 0.2^2 + 0.5 * 0.3^2) = 0.0068;
#   sym6's phase departs from linear by 0.0015 rad at 0.4 rad/px (0.2 rad per 2x pixel), once when
#   upsampling and once when downsampling, on each axis: <= 4 * 0.0015 * (1 + 0.5) = 0.009;
#   its gain is flat to 1e-9 there. Total < 0.016; a wrong angle, sign or half-pixel offset is >= 0.1.
SMOOTH_TOL = 0.02
SUPPORT = 8  # px: upsampling (3) + bilinear (1) + downsampling (3) taps, plus the filter delay, rounded up


def assert_matches_analytic(G_inv: torch.Tensor, size=(48, 48)):
    """resample(smooth) == smooth(G_inv q) wherever every tap reads inside the image."""
    H, W = size
    x, y = centred_grid(H, W)
    img = smooth(x, y)[None, None].expand(len(G_inv), 1, H, W)
    out = apply_geometry(img, G_inv)
    for i, G in enumerate(G_inv):
        sx, sy, _ = torch.einsum("ij,jhw->ihw", G, torch.stack([x, y, torch.ones_like(x)]))
        inside = (sx.abs() <= (W - 1) / 2 - SUPPORT) & (sy.abs() <= (H - 1) / 2 - SUPPORT)
        assert inside.sum() >= 50, "test setup: too few interior pixels to compare"
        err = (out[i, 0] - smooth(sx, sy))[inside].abs().max().item()
        assert err < SMOOTH_TOL, f"matrix {i}: {err:.4f}"


# ------------------------------------------------------------------------------------------------
# Identity and exact blits

@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_returns_the_input_exactly(channels):
    x = torch.randn(16, channels, 16, 16)
    out = make_augment_pipe("bgc")(x)
    assert torch.equal(out, x)


def test_xflip_is_an_exact_flip_or_nothing():
    x = torch.randn(64, 3, 8, 8)
    out = pipe_with(1.0, xflip=1)(x)
    flipped = torch.tensor([torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)])
    same = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert (flipped | same).all()
    assert flipped.any() and same.any()


def test_rotate90_is_an_exact_quarter_turn():
    x = torch.randn(64, 3, 8, 8)
    out = pipe_with(1.0, rotate90=1)(x)
    seen = set()
    for o, xi in zip(out, x):
        matches = [k for k in range(4) if torch.equal(o, torch.rot90(xi, k, dims=(1, 2)))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_integer_translation_is_a_reflect_padded_shift():
    H, W, xint_max = 8, 12, 0.25
    mx, my = round(xint_max * W), round(xint_max * H)  # 3, 2: the largest shifts
    x = torch.randn(48, 2, H, W)
    out = pipe_with(1.0, xint=1, xint_max=xint_max)(x)
    padded = F.pad(x, [mx, mx, my, my], mode="reflect")
    shifts = []
    for o, xp in zip(out, padded):
        found = [(dx, dy) for dx in range(-mx, mx + 1) for dy in range(-my, my + 1)
                 if torch.equal(o, xp[:, my - dy: my - dy + H, mx - dx: mx - dx + W])]
        assert len(found) == 1
        shifts.append(found[0])
    dxs, dys = [dx for dx, _ in shifts], [dy for _, dy in shifts]
    assert min(dxs) < 0 < max(dxs) and min(dys) < 0 < max(dys)


def test_a_mixed_batch_blits_some_images_and_resamples_the_others():
    x = torch.randn(3, 3, 16, 16, dtype=F64)
    flip = scale(t(-1.0), t(1.0))
    turn = rotate(t(math.cos(0.3)), t(math.sin(0.3)))
    G = matrices(torch.eye(3, dtype=F64)[None], flip, turn)
    out = apply_geometry(x, G)
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1], x[1].flip(2))
    torch.testing.assert_close(out[2:], resample(x[2:], turn), rtol=0, atol=1e-12)


def test_resampling_with_the_identity_gives_the_image_back():
    # sym6 is orthogonal: upsample, then downsample with the reversed filter, is the identity.
    x = torch.randn(2, 3, 13, 20, dtype=F64)
    out = resample(x, torch.eye(3, dtype=F64).expand(2, 3, 3))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-12)


def test_blit_agrees_with_resample_on_smooth_images():
    # The same quarter turn through both paths: exact gather vs. filtered resampling.
    H = W = 48
    x, y = centred_grid(H, W)
    img = smooth(x, y)[None, None]
    G = rotate(t(0.0), t(1.0))
    inner = slice(SUPPORT, -SUPPORT)
    err = (blit(img, G) - resample(img, G))[..., inner, inner].abs().max().item()
    assert err < SMOOTH_TOL


# ------------------------------------------------------------------------------------------------
# General geometry against analytic functions

@pytest.mark.parametrize("theta", [0.3, -1.0, 2.0, math.pi / 2 + 0.1])
def test_rotation_matches_the_analytic_rotation(theta):
    assert_matches_analytic(rotate(t(math.cos(theta)), t(math.sin(theta))))


def test_fractional_translation_and_anisotropic_scale_match_analytic():
    G = matrices(translate(t(0.5), t(-1.7)), translate(t(3.3), t(0.25)), scale(t(0.8), t(1.25)),
                 scale(t(1.3), t(1.3)) @ rotate(t(math.cos(0.7)), t(math.sin(0.7))))
    assert_matches_analytic(G, size=(48, 56))


def test_pipe_rotates_about_the_image_centre():
    # A radial function is unchanged by any rotation about the centre, whatever angles were drawn.
    H = W = 48
    x, y = centred_grid(H, W)
    r = torch.sqrt(x ** 2 + y ** 2)
    img = torch.cos(0.3 * r)[None, None].expand(8, 1, H, W).contiguous()
    out = pipe_with(1.0, rotate=1)(img)
    inside = r <= (W - 1) / 2 - SUPPORT  # a disc maps onto itself
    # |f''| <= 0.09 along any direction, so the bilinear term is below 0.006: SMOOTH_TOL holds.
    assert (out - img)[..., inside].abs().max() < SMOOTH_TOL
    assert (out - img).abs().max() > 0.1  # the corners did move


# ------------------------------------------------------------------------------------------------
# Colour

def rgb(n=32, size=6) -> torch.Tensor:
    return torch.rand(n, 3, size, size, dtype=F64) * 1.6 - 0.8


def luma_and_chroma(x):
    luma = x.mean(1, keepdim=True)  # projection on v = (1, 1, 1) / sqrt(3), in pixel units
    return luma, x - luma


def test_brightness_adds_one_offset_per_image():
    x = rgb(256)
    delta = pipe_with(1.0, brightness=1)(x) - x
    per_image = delta.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image), rtol=0, atol=1e-12)
    assert 0.17 < per_image[:, 0].std().item() < 0.23  # N(0, 0.2^2); 256 draws: std within +-15 %


def test_contrast_multiplies_by_one_factor_per_image():
    x = rgb(64) + 2.0  # away from 0 so the ratio is well conditioned
    ratio = (pipe_with(1.0, contrast=1)(x) / x).flatten(1)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-12, atol=0)


def test_luma_flip_negates_luma_and_keeps_chroma():
    x = rgb(64)
    out = pipe_with(1.0, lumaflip=1)(x)
    (l0, c0), (l1, c1) = luma_and_chroma(x), luma_and_chroma(out)
    torch.testing.assert_close(c1, c0, rtol=0, atol=1e-12)
    flipped = torch.tensor([torch.allclose(a, -b, atol=1e-12) for a, b in zip(l1, l0)])
    kept = torch.tensor([torch.allclose(a, b, atol=1e-12) for a, b in zip(l1, l0)])
    assert (flipped | kept).all() and flipped.any() and kept.any()
    grey = torch.zeros(8, 3, 4, 4, dtype=F64)  # mid-grey is on the mirror plane
    torch.testing.assert_close(pipe_with(1.0, lumaflip=1)(grey), grey, rtol=0, atol=1e-12)


def test_hue_rotation_keeps_luma_and_chroma_length():
    x = rgb(64)
    out = pipe_with(1.0, hue=1)(x)
    (l0, c0), (l1, c1) = luma_and_chroma(x), luma_and_chroma(out)
    torch.testing.assert_close(l1, l0, rtol=0, atol=1e-12)
    torch.testing.assert_close(c1.norm(dim=1), c0.norm(dim=1), rtol=1e-10, atol=1e-12)
    assert (c1 - c0).abs().max() > 0.1


def test_saturation_scales_chroma_by_one_factor_per_image():
    x = rgb(64)
    out = pipe_with(1.0, saturation=1)(x)
    (l0, c0), (l1, c1) = luma_and_chroma(x), luma_and_chroma(out)
    torch.testing.assert_close(l1, l0, rtol=0, atol=1e-12)
    s = (c1.flatten(1) * c0.flatten(1)).sum(1) / c0.flatten(1).square().sum(1)  # least-squares factor
    torch.testing.assert_close(c1, c0 * s[:, None, None, None], rtol=0, atol=1e-12)
    assert (s > 0).all() and s.min() < 0.5 and s.max() > 2  # log2 s ~ N(0, 1)


def test_grey_images_get_brightness_and_contrast_only():
    x = torch.rand(64, 1, 6, 6, dtype=F64) * 2 - 1
    out = pipe_with(1.0, **AUGMENT_PRESETS["c"])(x)
    for o, xi in zip(out.flatten(1), x.flatten(1)):  # o = a x + b exactly, per image
        A = torch.stack([xi, torch.ones_like(xi)], 1)
        coef = torch.linalg.lstsq(A, o[:, None]).solution
        torch.testing.assert_close(A @ coef, o[:, None], rtol=0, atol=1e-12)


def test_colour_matrices_compose_in_paper_order():
    # Brightness then contrast: c (x + b), not c x + b.
    spec = ColorSpec(brightness=1, contrast=1)
    torch.manual_seed(3)
    C = sample_color(spec, torch.tensor(1.0), 4, 3, torch.device("cpu"))
    torch.manual_seed(3)
    b = torch.randn(4, dtype=F64) * 0.2
    torch.rand(4, dtype=F64)
    c = torch.exp2(torch.randn(4, dtype=F64) * 0.5)
    torch.testing.assert_close(C[:, 0, 3], c * b, rtol=1e-12, atol=0)
    torch.testing.assert_close(C[:, 0, 0], c, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------------------
# How often and how much

def flipped_fraction(p: float, n: int = 4000) -> float:
    x = torch.arange(2.0).expand(n, 1, 1, 2)  # [0, 1] per image; a flip gives [1, 0]
    out = pipe_with(p, xflip=1)(x)
    return out[:, 0, 0, 0].mean().item()


@pytest.mark.parametrize("p, expected", [(1.0, 0.5), (0.5, 0.25)])
def test_xflip_frequency(p, expected):
    # The op fires with probability p and then flips with probability 1/2 (the paper's x-flip).
    # Binomial(4000, expected): 5 standard deviations are at most 0.04.
    sigma = math.sqrt(expected * (1 - expected) / 4000)
    assert abs(flipped_fraction(p) - expected) < 5 * sigma


def test_two_rotations_together_fire_with_probability_p():
    G = sample_inverse_geometry(GeomSpec(rotate=1), torch.tensor(0.5), 4000, 8, 8, torch.device("cpu"))
    rotated = (G != torch.eye(3, dtype=F64)).flatten(1).any(1).double().mean().item()
    assert abs(rotated - 0.5) < 5 * math.sqrt(0.25 / 4000)


def test_magnitudes_follow_their_distributions():
    n, H, W = 20000, 32, 40
    cpu = torch.device("cpu")
    one = torch.tensor(1.0)
    G = sample_inverse_geometry(GeomSpec(scale=1, scale_std=0.2), one, n, H, W, cpu)
    log2_s = -torch.log2(G[:, 0, 0])
    assert abs(log2_s.std().item() - 0.2) < 0.01 and torch.equal(G[:, 0, 0], G[:, 1, 1])
    G = sample_inverse_geometry(GeomSpec(aniso=1), one, n, H, W, cpu)
    torch.testing.assert_close(G[:, 0, 0] * G[:, 1, 1], torch.ones(n, dtype=F64), rtol=1e-12, atol=0)
    G = sample_inverse_geometry(GeomSpec(xfrac=1, xfrac_std=0.125), one, n, H, W, cpu)
    assert abs(G[:, 0, 2].std().item() / (0.125 * W) - 1) < 0.03
    assert abs(G[:, 1, 2].std().item() / (0.125 * H) - 1) < 0.03
    G = sample_inverse_geometry(GeomSpec(xint=1, xint_max=0.125), one, n, H, W, cpu)
    assert torch.equal(G[:, :2, 2], G[:, :2, 2].round())
    assert G[:, 0, 2].abs().max() == round(0.125 * W) and G[:, 1, 2].abs().max() == round(0.125 * H)


# ------------------------------------------------------------------------------------------------
# Randomness, gradients, shapes

def test_randomness_follows_torchs_rng_state():
    pipe = pipe_with(0.7, **AUGMENT_PRESETS["bgc"])
    x = torch.randn(8, 3, 16, 16)
    state = torch.get_rng_state()
    a = pipe(x)
    torch.set_rng_state(state)
    b = pipe(x)
    assert torch.equal(a, b)
    torch.manual_seed(123)
    c = pipe(x)
    torch.manual_seed(123)
    assert torch.equal(pipe(x), c)
    assert not torch.equal(a, c)


def seeded(pipe: AugmentPipe, seed: int):
    """The same draws on every call, so gradcheck sees one fixed linear map."""
    def run(x):
        torch.manual_seed(seed)
        return pipe(x)
    return run


@pytest.mark.parametrize("preset, p, n, seed", [("bgc", 1.0, 2, 5), ("b", 1.0, 2, 5), ("bgc", 0.3, 3, 4)])
def test_gradcheck_and_gradgradcheck(preset, p, n, seed):
    # p = 1 resamples every image, "b" blits every image, and seed 4 at p = 0.3 mixes both paths.
    pipe = pipe_with(p, **AUGMENT_PRESETS[preset])
    x = torch.randn(n, 3, 6, 6, dtype=F64, requires_grad=True)
    torch.manual_seed(seed)
    exact = is_blit(sample_inverse_geometry(pipe.geom, pipe.p, n, 6, 6, torch.device("cpu")), 6, 6)
    assert exact.all() if preset == "b" else (exact.any() == (p < 1)) and not exact.all()
    f = seeded(pipe, seed)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_r1_through_the_pipe_backpropagates_to_a_discriminator_weight():
    # R1 differentiates grad_x D(augment(x)) w.r.t. D's weights: needs the pipe's second derivative.
    w = torch.randn(3, 8, 8, dtype=F64, requires_grad=True)
    x = torch.randn(2, 3, 8, 8, dtype=F64, requires_grad=True)
    f = seeded(pipe_with(1.0, **AUGMENT_PRESETS["bgc"]), seed=1)
    logits = (torch.tanh(f(x)) * w).flatten(1).sum(1)
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    g.square().sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_device_are_kept(dtype):
    pipe = pipe_with(0.8, **AUGMENT_PRESETS["bgc"])
    for shape in [(5, 3, 16, 16), (3, 1, 12, 20), (2, 3, 32, 8)]:
        out = pipe(torch.randn(shape, dtype=dtype))
        assert out.shape == shape and out.dtype == dtype and out.device.type == "cpu"
        assert out.isfinite().all()


def test_geometry_works_for_any_channel_count():
    out = pipe_with(1.0, **AUGMENT_PRESETS["bg"])(torch.randn(2, 5, 8, 8))
    assert out.shape == (2, 5, 8, 8)


@pytest.mark.parametrize("images, match", [
    (torch.zeros(3, 16, 16), r"\[N, C, H, W\].*shape \(3, 16, 16\)"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), r"dtype torch.uint8"),
    (torch.zeros(2, 3, 0, 8), r"shape \(2, 3, 0, 8\)"),
    (torch.zeros(2, 4, 8, 8), r"1 or 3 channels, got shape \(2, 4, 8, 8\).*bg"),
])
def test_bad_images_are_refused_with_their_shape(images, match):
    with pytest.raises(ValueError, match=match):
        make_augment_pipe("bgc")(images)


def test_presets_and_bad_arguments():
    assert {"b", "g", "c", "bg", "bgc"} <= set(AUGMENT_PRESETS)
    bgc = AUGMENT_PRESETS["bgc"]
    assert set(bgc) == {"xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                        "brightness", "contrast", "lumaflip", "hue", "saturation"}
    assert all(v == 1 for v in bgc.values())
    assert make_augment_pipe("bgc").p.item() == 0 and "p" in make_augment_pipe("b").state_dict()
    with pytest.raises(ValueError, match=r"'bgcf'.*b, g, c, bg, bc, gc, bgc"):
        make_augment_pipe("bgcf")
    with pytest.raises(ValueError, match=r"scale_std=-0.1 must be a finite number >= 0"):
        AugmentPipe(scale=1, scale_std=-0.1)


# ------------------------------------------------------------------------------------------------
# The filter

def test_sym6_is_the_published_orthogonal_symlet():
    f = np.array(sym6_taps())
    assert len(f) == 12 and abs(f.sum() - 1) < 1e-14
    for n in range(6):  # orthogonal to its even shifts (sum 1 normalisation: delta / 2)
        assert abs(np.dot(f[: 12 - 2 * n], f[2 * n:]) - (0.5 if n == 0 else 0)) < 1e-12
    k = np.arange(12)
    for m in range(6):  # the high-pass (-1)^k f[k] annihilates polynomials of degree < 6
        assert abs(((-1.0) ** k * k ** m * f).sum()) < 1e-9 * 11 ** m
    # Daubechies (1992) / PyWavelets "sym6" decomposition low-pass, first taps, scaled to sum 1.
    published = np.array([0.015404109327027373, 0.0034907120842174702, -0.11799011114819057]) / math.sqrt(2)
    np.testing.assert_allclose(f[:3], published, rtol=1e-9)


# ------------------------------------------------------------------------------------------------
# GPU

@pytest.mark.cuda
def test_cuda_matches_cpu_for_the_same_matrices():
    H = W = 32
    x, y = centred_grid(H, W)
    img = smooth(x, y)[None, None].expand(3, 3, H, W).float().contiguous()
    G = matrices(scale(t(-1.0), t(1.0)), rotate(t(math.cos(0.4)), t(math.sin(0.4))), translate(t(0.3), t(2.0)))
    torch.testing.assert_close(apply_geometry(img.cuda(), G).cpu(), apply_geometry(img, G), rtol=0, atol=1e-4)
    pipe = pipe_with(0.8, **AUGMENT_PRESETS["bgc"]).cuda()
    out = pipe(torch.randn(4, 3, 32, 32, device="cuda"))
    assert out.device.type == "cuda" and out.dtype == torch.float32 and out.isfinite().all()
