"""conv2d_resample's fast paths against its definition: FIR-upsample, convolve, FIR-downsample."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from cuda_ops import upfirdn2d as fir
from cuda_ops.conv2d_resample import conv2d_resample, conv2d_resample_weight_grads


def definition(x, w, f, up, down, padding, groups, flip_weight):
    """The generic path written out: upsample+pad, full-res convolution, downsample."""
    kh, kw = w.shape[2:]
    fw, fh = fir.get_filter_size(f)
    px0 = py0 = px1 = py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    x = fir.upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)
    x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        x = fir.upfirdn2d(x, f, down=down)
    return x


@pytest.mark.parametrize("k,up,down,groups,flip_weight", list(itertools.product(
    [1, 3], [1, 2], [1, 2], [1, 2], [True, False])))
def test_fast_paths_match_definition(k, up, down, groups, flip_weight):
    x = torch.randn(2, 4, 7, 8, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    f = fir.setup_filter([1, 3, 3, 1]).double()
    got = conv2d_resample(x, w, f.float(), up=up, down=down, padding=k // 2, groups=groups, flip_weight=flip_weight)
    want = definition(x, w, f.float(), up, down, k // 2, groups, flip_weight)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
def test_gradgradcheck(up, down):
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    f = fir.setup_filter([1, 3, 3, 1])
    fn = lambda x, w: conv2d_resample(x, w, f, up=up, down=down, padding=1, flip_weight=(up == 1))
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_channel_mismatch_error():
    with pytest.raises(ValueError, match="x has 3 channels"):
        conv2d_resample(torch.zeros(1, 3, 4, 4), torch.zeros(2, 4, 3, 3))


@pytest.mark.parametrize("k,down,padding,flip_weight", [
    (3, 1, 1, True), (3, 2, 1, True), (1, 2, 0, True), (1, 1, 0, True), (3, 2, 1, False), (3, 1, [0, 2, 1, 0], True)])
def test_weight_grads_per_group_equal_autograd_group_by_group(k, down, padding, flip_weight):
    """The oracle: autograd through conv2d_resample itself, one group of samples at a time."""
    g = torch.Generator().manual_seed(3)
    G, n = 3, 2
    x = torch.randn(G, n, 4, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(5, 4, k, k, dtype=torch.float64)
    f = fir.setup_filter([1, 3, 3, 1])
    y = conv2d_resample(x.flatten(0, 1), w, f, down=down, padding=padding, flip_weight=flip_weight)
    dy = torch.randn(G, n, *y.shape[1:], generator=g, dtype=torch.float64)
    got = conv2d_resample_weight_grads(x.transpose(0, 1), dy.transpose(0, 1), (k, k), f, down=down, padding=padding,
                                       flip_weight=flip_weight)  # [n, G, ...]: n samples of each group
    for i in range(G):
        leaf = w.clone().requires_grad_(True)
        out = conv2d_resample(x[i], leaf, f, down=down, padding=padding, flip_weight=flip_weight)
        (want,) = torch.autograd.grad(out, leaf, dy[i])
        torch.testing.assert_close(got[i], want, rtol=1e-10, atol=1e-10)


def test_weight_grads_per_group_refuse_mismatched_groups():
    with pytest.raises(ValueError, match=r"x \[n, G, C, H, W\] and dy"):
        conv2d_resample_weight_grads(torch.zeros(2, 3, 4, 8, 8), torch.zeros(3, 2, 5, 8, 8), (3, 3))
