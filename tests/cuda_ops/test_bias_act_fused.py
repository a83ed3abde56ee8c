"""The fused bias_act kernels against the reference: values, first and second derivatives, over every
activation, clamp, alpha/gain, bias dimension and memory layout (gradcheck: test_bias_act.py); the honest
fallback when a kernel is unavailable."""
import logging
from pathlib import Path

import pytest
import torch

from cuda_ops import _build, _impl, _kernels
from cuda_ops import bias_act as ba
from tests.cuda_ops.fused import FUSED, assert_same, derivatives, device_of

LAYOUTS = {  # name -> (shape, dim, channels-last)
    "nchw": ((3, 5, 4, 7), 1, False),
    "channels_last": ((3, 5, 4, 7), 1, True),
    "dim0": ((6, 5), 0, False),
    "dim2_odd": ((2, 3, 9, 1), 2, False),
    "fc": ((7, 33), 1, False),
}


def _inputs(layout, dtype, device, with_bias=True):
    shape, dim, channels_last = LAYOUTS[layout]
    x = torch.randn(shape, dtype=torch.float64) * 2
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b = torch.randn(shape[dim], dtype=torch.float64) if with_bias else None
    return x.to(device, dtype), (b.to(device, dtype) if b is not None else None), dim


@pytest.mark.parametrize("impl", FUSED)
@pytest.mark.parametrize("act", list(ba.activation_funcs))
@pytest.mark.parametrize("alpha,gain,clamp", [(None, None, None), (0.3, 0.7, 0.5), (None, 2.0, 0.0)])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_matches_reference_to_second_order(impl, act, alpha, gain, clamp, layout):
    x, b, dim = _inputs(layout, torch.float64, device_of(impl))
    kw = dict(dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    got = derivatives(lambda x, b: ba.bias_act(x, b, impl=impl, **kw), [x, b])
    want = derivatives(lambda x, b: ba.bias_act(x, b, impl="ref", **kw), [x, b])
    assert_same(got, want, rtol=1e-10, atol=1e-12)
    if LAYOUTS[layout][2]:
        assert got[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("impl", FUSED)
@pytest.mark.parametrize("act", ["linear", "lrelu", "tanh", "softplus"])
def test_without_bias(impl, act):
    x, _, dim = _inputs("nchw", torch.float64, device_of(impl), with_bias=False)
    got = derivatives(lambda x: ba.bias_act(x, None, act=act, clamp=1.5, impl=impl), [x])
    want = derivatives(lambda x: ba.bias_act(x, None, act=act, clamp=1.5, impl="ref"), [x])
    assert_same(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", FUSED)
@pytest.mark.parametrize("act", list(ba.activation_funcs))
def test_float32_matches_reference(impl, act):
    x, b, dim = _inputs("channels_last", torch.float32, device_of(impl))
    got = derivatives(lambda x, b: ba.bias_act(x, b, act=act, clamp=256, impl=impl), [x, b])
    want = derivatives(lambda x, b: ba.bias_act(x, b, act=act, clamp=256, impl="ref"), [x, b])
    assert_same(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("act", list(ba.activation_funcs))
def test_float16_on_cuda_matches_reference(act):
    x, b, dim = _inputs("nchw", torch.float16, "cuda")
    got = ba.bias_act(x, b, act=act, clamp=256, impl="cuda")
    want = ba.bias_act(x.float(), b.float(), act=act, clamp=256, impl="ref")
    torch.testing.assert_close(got.float(), want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("impl", FUSED)
def test_third_derivative_is_refused(impl):
    x = torch.randn(2, 3, dtype=torch.float64, device=device_of(impl), requires_grad=True)
    (g,) = torch.autograd.grad(ba.bias_act(x, act="tanh", impl=impl).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|non-differentiable|does not require grad"):
        torch.autograd.grad(gg.sum(), x)


def test_auto_runs_the_cpu_kernels_here():
    x = torch.zeros(2, 3, 4, 4)
    assert _impl.resolve("bias_act", "auto", x) == "cpu"
    assert _impl.resolve("bias_act", "auto", x.double()) == "cpu"


def test_impl_that_does_not_fit_the_device_is_refused():
    with pytest.raises(ValueError, match="impl='cuda' cannot run a tensor on cpu"):
        ba.bias_act(torch.zeros(2, 3), impl="cuda")


@pytest.fixture
def fresh_reports(monkeypatch):
    monkeypatch.setattr(_impl, "_reported", set())
    monkeypatch.delenv("LEAKGUARD_OPS", raising=False)


def test_unsupported_dtype_falls_back_once_with_the_reason(fresh_reports, monkeypatch, caplog):
    x, b = torch.randn(2, 3, 4, dtype=torch.bfloat16), torch.randn(3, dtype=torch.bfloat16)
    with caplog.at_level(logging.WARNING, logger="cuda_ops"):
        y1 = ba.bias_act(x, b, act="lrelu")
        ba.bias_act(x, b, act="lrelu")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "bias_act" in lines[0] and "dtype bfloat16 is not supported" in lines[0]
    torch.testing.assert_close(y1, ba.bias_act(x, b, act="lrelu", impl="ref"))
    monkeypatch.setenv("LEAKGUARD_OPS", "strict")
    with pytest.raises(_impl.OpFallbackError, match="strict.*bfloat16"):
        ba.bias_act(x, b, act="lrelu")


def test_a_broken_build_falls_back_with_its_log_and_strict_refuses(fresh_reports, tmp_path, monkeypatch, caplog):
    src = tmp_path / "broken.cpp"
    src.write_text("#include <torch/extension.h>\nthis does not compile;\n")
    monkeypatch.setenv("LEAKGUARD_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(_kernels.SPECS, "cpu", _build.ExtensionSpec(name="lg_broken_ops", sources=(src,)))
    _kernels.forget()
    try:
        x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
        with caplog.at_level(logging.WARNING, logger="cuda_ops"):
            y = ba.bias_act(x, b, act="lrelu")
        torch.testing.assert_close(y, ba.bias_act(x, b, act="lrelu", impl="ref"))
        [line] = [r.getMessage() for r in caplog.records]
        assert "reference instead of cpu" in line and "build of lg_broken_ops failed" in line
        log = Path(line.rsplit("full log: ", 1)[1].rstrip(")"))
        assert log.is_file() and "this does not compile" in log.read_text()
        monkeypatch.setenv("LEAKGUARD_OPS", "strict")
        with pytest.raises(_impl.OpFallbackError, match="strict.*build of lg_broken_ops failed"):
            ba.bias_act(x, b, act="lrelu")
    finally:
        monkeypatch.undo()
        _kernels.forget()


def test_auto_on_cpu_fuses_the_piecewise_linear_activations_only(monkeypatch, caplog):
    monkeypatch.setenv("LEAKGUARD_OPS", "strict")     # the reference here is a choice, not a fallback
    calls = []
    real = ba.bias_act_fused
    monkeypatch.setattr(ba, "bias_act_fused", lambda *a, **k: (calls.append(a[3]), real(*a, **k))[1])
    x, b = torch.randn(2, 3, 4), torch.randn(3)
    with caplog.at_level(logging.INFO, logger="cuda_ops"):
        for act in ba.activation_funcs:
            torch.testing.assert_close(ba.bias_act(x, b, act=act), ba.bias_act(x, b, act=act, impl="ref"))
        ba.bias_act(x, b, act="tanh", impl="cpu")      # asked for explicitly: the kernel runs
    assert calls == [*ba.CPU_FUSED_BY_DEFAULT, "tanh"] and not caplog.records


def test_ops_mode_ref_runs_the_reference_and_bad_modes_are_named(monkeypatch):
    x = torch.zeros(2, 3)
    monkeypatch.setenv("LEAKGUARD_OPS", "ref")
    assert _impl.resolve("bias_act", "auto", x) == "ref"
    assert _impl.resolve("bias_act", "cpu", x) == "cpu"      # an explicit choice still wins
    monkeypatch.setenv("LEAKGUARD_OPS", "fast")
    with pytest.raises(ValueError, match="LEAKGUARD_OPS='fast'.*strict"):
        ba.bias_act(x)
