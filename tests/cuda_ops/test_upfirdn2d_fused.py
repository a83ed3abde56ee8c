"""The fused upfirdn2d kernels against the reference: values and derivatives over up/down 1/2/4,
paddings (crops too), flip, gain, even and odd sizes, 1D and 2D filters, channels-last (gradcheck:
test_upfirdn2d.py); the StyleGAN2 resamplers."""
import itertools

import pytest
import torch

from cuda_ops import upfirdn2d as fir
from tests.cuda_ops.fused import FUSED, assert_same, derivatives, device_of

GRID = list(itertools.product(
    [(1, 1), (2, 2), (4, 4), (2, 1)],                    # up (x, y)
    [(1, 1), (2, 2), (4, 4), (1, 2)],                    # down (x, y)
    [(0, 0, 0, 0), (2, 1, 2, 1), (-1, 2, 3, -2)],        # padding x0, x1, y0, y1
))


def _filter(kind: str, device) -> torch.Tensor:
    return {
        "2d_3x4": torch.randn(3, 4),                       # asymmetric, non-square: flips and axes show
        "1d_5": torch.randn(5),                            # separable: two passes
        "stylegan": fir.setup_filter([1, 3, 3, 1]),
    }[kind].to(device)


@pytest.mark.parametrize("impl", FUSED)
@pytest.mark.parametrize("up,down,pad", GRID)
@pytest.mark.parametrize("filt,flip", [("2d_3x4", False), ("2d_3x4", True), ("1d_5", False)])
def test_matches_reference_with_gradients(impl, up, down, pad, filt, flip):
    device = device_of(impl)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64, device=device)   # odd and even sizes
    f = _filter(filt, device)
    kw = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=1.5)
    got = derivatives(lambda x: fir.upfirdn2d(x, f, impl=impl, **kw), [x])
    want = derivatives(lambda x: fir.upfirdn2d(x, f, impl="ref", **kw), [x])
    assert_same(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", FUSED)
@pytest.mark.parametrize("fn,kw", [(fir.upsample2d, {}), (fir.downsample2d, {}), (fir.filter2d, {}),
                                   (fir.upsample2d, dict(up=4)), (fir.downsample2d, dict(down=(2, 1)))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resamplers_channels_last(impl, fn, kw, dtype):
    device = device_of(impl)
    x = torch.randn(3, 5, 9, 6, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
    f = fir.setup_filter([1, 3, 3, 1], device=device)
    got = derivatives(lambda x: fn(x, f, impl=impl, **kw), [x])
    want = derivatives(lambda x: fn(x, f, impl="ref", **kw), [x])
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert_same(got, want, rtol=tol, atol=tol)
    assert got[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("impl", FUSED)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 3, 17), (2, 1, 16, 2)])
def test_edge_sizes(impl, shape):
    device = device_of(impl)
    x = torch.randn(shape, dtype=torch.float64, device=device)
    f = fir.setup_filter([1, 3, 3, 1], device=device)
    for fn in (fir.upsample2d, fir.filter2d):
        torch.testing.assert_close(fn(x, f, impl=impl), fn(x, f, impl="ref"))


@pytest.mark.cuda
def test_float16_on_cuda_matches_reference():
    x = torch.randn(4, 8, 16, 16, device="cuda", dtype=torch.float16)
    f = fir.setup_filter([1, 3, 3, 1], device="cuda")
    for fn in (fir.upsample2d, fir.downsample2d):
        torch.testing.assert_close(fn(x, f, impl="cuda").float(), fn(x.float(), f, impl="ref"), rtol=2e-3, atol=2e-3)


def test_a_trainable_filter_gets_its_gradient_from_the_reference():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    f = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    (g_auto,) = torch.autograd.grad(fir.upfirdn2d(x, f, up=2).sum(), f)
    (g_ref,) = torch.autograd.grad(fir.upfirdn2d(x, f, up=2, impl="ref").sum(), f)
    torch.testing.assert_close(g_auto, g_ref)
