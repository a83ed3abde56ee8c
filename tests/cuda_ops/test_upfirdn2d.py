"""upfirdn2d against the official outputs and against a direct numpy definition of the op."""
import itertools

import numpy as np
import pytest
import torch

from cuda_ops import upfirdn2d as fir
from tests.conftest import load_fixture, rel_err
from tests.cuda_ops.fused import ALL, device_of


def upfirdn2d_numpy(x, f, up, down, pad, flip_filter, gain):
    """The definition, one output pixel at a time: zero-insert, pad/crop, convolve, subsample."""
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = pad
    N, C, H, W = x.shape
    u = np.zeros((N, C, H * upy, W * upx))
    u[:, :, ::upy, ::upx] = x
    big = np.zeros((N, C, u.shape[2] + abs(y0) + abs(y1), u.shape[3] + abs(x0) + abs(x1)))
    big[:, :, abs(y0):abs(y0) + u.shape[2], abs(x0):abs(x0) + u.shape[3]] = u
    # Negative padding crops what positive padding would have added.
    big = big[:, :, abs(y0) - y0: big.shape[2] - (abs(y1) - y1), abs(x0) - x0: big.shape[3] - (abs(x1) - x1)]
    f2 = np.outer(f, f) if f.ndim == 1 else f
    f2 = f2 * gain
    kern = f2 if flip_filter else f2[::-1, ::-1]  # correlation with the flipped filter = convolution
    fh, fw = kern.shape
    out = np.zeros((N, C, big.shape[2] - fh + 1, big.shape[3] - fw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = (big[:, :, i:i + fh, j:j + fw] * kern).sum(axis=(2, 3))
    return out[:, :, ::downy, ::downx]


@pytest.mark.parametrize("impl", ALL)
def test_official_cases(impl):
    meta, d = load_fixture("ops")
    cases = [c for c in meta if c["op"] == "upfirdn2d"]
    assert cases
    for case in cases:
        k = f"upfirdn2d/{case['index']}"
        x, f = (torch.from_numpy(d[k + n]).to(device_of(impl)) for n in ("/x", "/f"))
        y = fir.upfirdn2d(x, f, up=case["up"], down=case["down"], padding=case["padding"],
                          flip_filter=case["flip_filter"], gain=case["gain"], impl=impl)
        assert y.shape == d[k + "/y"].shape, case
        assert rel_err(y.cpu(), d[k + "/y"]) <= 1e-6, case


SETTINGS = list(itertools.product(
    [(1, 1), (2, 2), (4, 4), (2, 1)],                    # up (x, y)
    [(1, 1), (2, 2), (4, 4), (1, 2)],                    # down (x, y)
    [(0, 0, 0, 0), (2, 1, 2, 1), (-1, 2, 3, -2)],        # padding x0, x1, y0, y1
    [False, True],                                       # flip_filter
))


@pytest.mark.parametrize("impl", ALL)
@pytest.mark.parametrize("up,down,pad,flip", SETTINGS)
def test_matches_definition(impl, up, down, pad, flip):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 8))                 # odd and even sizes
    f = rng.standard_normal((3, 4)) if flip else rng.standard_normal(4)  # asymmetric taps make flips visible
    f = (np.outer(f, f) if f.ndim == 1 else f).astype(np.float32)       # the op takes float32 taps
    gain = 2.0                                             # a power of two: scaling the float32 taps is exact
    want = upfirdn2d_numpy(x, f.astype(np.float64), up, down, pad, flip, gain)
    dev = device_of(impl)
    got = fir.upfirdn2d(torch.from_numpy(x).to(dev), torch.from_numpy(f).to(dev), up=up, down=down, padding=pad,
                        flip_filter=flip, gain=gain, impl=impl)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-10, atol=1e-10)


def test_separable_filter_matches_outer_product():
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    taps = [1, 2, 5, 7, 7, 5, 2, 1]
    f1 = fir.setup_filter(taps)                           # 8 taps: separable by default
    f2 = fir.setup_filter(taps, separable=False)
    assert f1.ndim == 1 and f2.ndim == 2
    for kw in [dict(up=2, padding=[4, 3, 4, 3]), dict(down=2, padding=3)]:
        torch.testing.assert_close(fir.upfirdn2d(x, f1, **kw), fir.upfirdn2d(x, f2, **kw))


def test_setup_filter():
    f = fir.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert f.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    assert fir.setup_filter([1, 2], flip_filter=True, normalize=False).tolist() == [[4, 2], [2, 1]]
    assert fir.setup_filter([1, 1], gain=4).sum().item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="non-empty"):
        fir.setup_filter([])


@pytest.mark.parametrize("fn,kw,taps,shape", [
    (fir.upsample2d, dict(up=2), [1, 3, 3, 1], (2, 3, 18, 22)),
    (fir.downsample2d, dict(down=2), [1, 3, 3, 1], (2, 3, 4, 5)),
    (fir.filter2d, dict(), [1, 3, 3, 1], (2, 3, 9, 11)),
    (fir.upsample2d, dict(up=4), [1, 1, 1, 1], (2, 3, 36, 44)),  # x4 needs a 4-phase filter: box = nearest
])
def test_resamplers_keep_shape_and_dc_gain(fn, kw, taps, shape):
    f = fir.setup_filter(taps)
    y = fn(torch.ones(2, 3, 9, 11), f, **kw)
    assert y.shape == shape
    # A constant image stays constant away from the borders: the filters keep DC gain 1.
    interior = y[:, :, 3:-3, 3:-3]
    torch.testing.assert_close(interior, torch.ones_like(interior))


GRAD_SETTINGS = [
    dict(up=2, padding=[2, 1, 2, 1]),
    dict(down=2, padding=1),
    dict(up=2, down=2, padding=[0, 1, 2, 3], flip_filter=True, gain=2),
    dict(up=1, padding=[-1, 1, 1, -1]),
    dict(up=4, padding=[3, 3, 3, 3], gain=16),
]


@pytest.mark.parametrize("impl", ALL)
@pytest.mark.parametrize("kw", GRAD_SETTINGS)
def test_gradcheck_and_gradgradcheck(impl, kw):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, device=device_of(impl), requires_grad=True)
    f = fir.setup_filter([1, 3, 3, 1], device=device_of(impl))
    fn = lambda x: fir.upfirdn2d(x, f, impl=impl, **kw)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_vmap_matches_batch():
    f = fir.setup_filter([1, 3, 3, 1])
    x = torch.randn(4, 2, 3, 8, 8)
    per_sample = torch.func.vmap(lambda xi: fir.upsample2d(xi, f))(x)
    torch.testing.assert_close(per_sample, fir.upsample2d(x.reshape(8, 3, 8, 8), f).reshape(4, 2, 3, 16, 16))


def test_bad_input_errors():
    f = fir.setup_filter([1, 3, 3, 1])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        fir.upfirdn2d(torch.zeros(3, 8, 8), f)
    with pytest.raises(ValueError, match="padding"):
        fir.upfirdn2d(torch.zeros(1, 1, 8, 8), f, padding=[1, 2, 3])
    with pytest.raises(ValueError, match="up must be >= 1"):
        fir.upfirdn2d(torch.zeros(1, 1, 8, 8), f, up=0)
    with pytest.raises(ValueError, match="impl"):
        fir.upfirdn2d(torch.zeros(1, 1, 8, 8), f, impl="fast")
