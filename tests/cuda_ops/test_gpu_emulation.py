"""The CUDA kernels' own code (host side and per-thread element(), from the headers the .cu files
compile) run serially on the CPU, against the reference: values and, through the fused autograd
paths, first and second derivatives. On machines without a GPU this is what checks the GPU's indexing; the @cuda tests
run the real kernels where a GPU is present."""
import itertools

import pytest
import torch

from cuda_ops import _build, _kernels
from cuda_ops import bias_act as ba
from cuda_ops import upfirdn2d as fir
from cuda_ops._bias_act_fused import ACT_CODES, bias_act_fused
from cuda_ops._upfirdn2d_fused import upfirdn2d_fused
from tests.conftest import REPO
from tests.cuda_ops.fused import assert_same, derivatives


@pytest.fixture(scope="module")
def emulated():
    spec = _build.ExtensionSpec(name="lg_gpu_emulation",
                                sources=(REPO / "tests" / "cuda_ops" / "csrc" / "gpu_emulation.cpp",),
                                include_dirs=(_kernels.CSRC,), cflags=("-O2",))
    return _build.load_extension(spec)


GRID = list(itertools.product(
    [(1, 1), (2, 2), (4, 4), (2, 1)],                    # up (x, y); 2 and 1 hit the specialised kernels
    [(1, 1), (2, 2), (1, 2)],                            # down (x, y)
    [(0, 0, 0, 0), (2, 1, 2, 1), (-1, 2, 3, -2)],        # padding x0, x1, y0, y1
))


@pytest.mark.parametrize("up,down,pad", GRID)
@pytest.mark.parametrize("filt,flip,channels_last", [("4x4", False, False), ("4x4", True, True),
                                                     ("3x5", False, True), ("1d", False, False)])
def test_cuda_element_code_matches_reference(emulated, up, down, pad, filt, flip, channels_last):
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    f = {"4x4": fir.setup_filter([1, 3, 3, 1]), "3x5": torch.randn(3, 5), "1d": torch.randn(6)}[filt]
    args = (fir._parse_scaling(up, "up"), fir._parse_scaling(down, "down"), fir.parse_padding(pad), flip, 2.0)
    got = derivatives(lambda x: upfirdn2d_fused(x, f, *args, kernel=emulated), [x])
    want = derivatives(lambda x: fir.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=2.0,
                                               impl="ref"), [x])
    assert_same(got, want, rtol=1e-10, atol=1e-12)
    if channels_last:
        assert got[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_cuda_element_code_in_low_precision(emulated, dtype, tol):
    x = torch.randn(2, 4, 9, 6)
    f = fir.setup_filter([1, 3, 3, 1])
    for up, down, pad in [(2, 1, [2, 1, 2, 1]), (1, 2, [1, 1, 1, 1]), (1, 1, [1, 2, 1, 2])]:
        got = emulated.upfirdn2d(x.to(dtype), f.to(dtype), up, up, down, down, *pad, False, 1.0)
        want = fir.upfirdn2d(x.to(dtype).float(), f, up=up, down=down, padding=pad, impl="ref")
        torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol)


def test_cuda_host_checks_name_the_problem(emulated):
    f = fir.setup_filter([1, 3, 3, 1])
    with pytest.raises(RuntimeError, match="output would be empty"):
        emulated.upfirdn2d(torch.zeros(1, 1, 2, 2), f, 1, 1, 1, 1, -3, 0, 0, 0, False, 1.0)
    with pytest.raises(RuntimeError, match="f must have x's dtype"):
        emulated.upfirdn2d(torch.zeros(1, 1, 4, 4, dtype=torch.float64), f, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)


@pytest.mark.parametrize("act", list(ba.activation_funcs))
@pytest.mark.parametrize("clamp", [None, 0.7])
@pytest.mark.parametrize("shape,dim,channels_last", [((3, 5, 4, 7), 1, False), ((3, 5, 4, 7), 1, True),
                                                     ((6, 5), 0, False), ((2, 3, 9, 1), 2, False)])
def test_cuda_bias_act_code_matches_reference(emulated, act, clamp, shape, dim, channels_last):
    x = torch.randn(shape, dtype=torch.float64) * 2
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b = torch.randn(shape[dim], dtype=torch.float64)
    spec = ba.activation_funcs[act]
    got = derivatives(lambda x, b: bias_act_fused(x, b, dim, act, spec.def_alpha, 0.9, clamp, kernel=emulated),
                      [x, b])
    want = derivatives(lambda x, b: ba.bias_act(x, b, dim=dim, act=act, gain=0.9, clamp=clamp, impl="ref"), [x, b])
    assert_same(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_cuda_bias_act_code_in_low_precision(emulated, dtype, tol):
    x, b = torch.randn(4, 8, 5, 5), torch.randn(8)
    for act in ("lrelu", "tanh", "swish"):
        got = emulated.bias_act(x.to(dtype), b.to(dtype), torch.empty(0, dtype=dtype), 0, 1,
                                ACT_CODES[act], 0.2, 1.4, 256.0)
        want = ba.bias_act(x.to(dtype).float(), b.to(dtype).float(), act=act, alpha=0.2, gain=1.4, clamp=256,
                           impl="ref")
        torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol)
