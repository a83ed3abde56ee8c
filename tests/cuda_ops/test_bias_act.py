"""bias_act against the official outputs and a closed-form numpy oracle; derivatives in float64."""
import logging

import numpy as np
import pytest
import torch

from cuda_ops import _impl
from cuda_ops import bias_act as ba
from tests.conftest import load_fixture, rel_err
from tests.cuda_ops.fused import ALL, device_of


def _numpy_act(name, x, alpha):
    return {
        "linear": lambda: x,
        "relu": lambda: np.maximum(x, 0),
        "lrelu": lambda: np.where(x >= 0, x, alpha * x),
        "tanh": lambda: np.tanh(x),
        "sigmoid": lambda: 1 / (1 + np.exp(-x)),
        "elu": lambda: np.where(x >= 0, x, np.exp(x) - 1),
        "selu": lambda: 1.0507009873554805 * np.where(x >= 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
        "softplus": lambda: np.log1p(np.exp(x)),
        "swish": lambda: x / (1 + np.exp(-x)),
    }[name]()


@pytest.mark.parametrize("impl", ALL)
def test_official_cases(impl):
    meta, d = load_fixture("ops")
    cases = [c for c in meta if c["op"] == "bias_act"]
    assert {c["act"] for c in cases} == set(ba.activation_funcs)
    for case in cases:
        k = f"bias_act/{case['index']}"
        x, b = (torch.from_numpy(d[k + n]).to(device_of(impl)) for n in ("/x", "/b"))
        y = ba.bias_act(x, b, dim=case["dim"], act=case["act"], clamp=case["clamp"], impl=impl)
        assert rel_err(y.cpu(), d[k + "/y"]) <= 1e-6, case


@pytest.mark.parametrize("act", list(ba.activation_funcs))
@pytest.mark.parametrize("alpha,gain,clamp", [(None, None, None), (0.3, 0.7, 0.5), (None, 2.0, 0.0)])
@pytest.mark.parametrize("impl", ALL)
def test_matches_closed_form(impl, act, alpha, gain, clamp):
    rng = np.random.default_rng(2)
    x, b = rng.standard_normal((3, 5, 2, 3)), rng.standard_normal(5)
    spec = ba.activation_funcs[act]
    a = spec.def_alpha if alpha is None else alpha
    g = spec.def_gain if gain is None else gain
    want = _numpy_act(act, x + b[None, :, None, None], a) * g
    if clamp is not None:
        want = np.clip(want, -clamp, clamp)
    dev = device_of(impl)
    got = ba.bias_act(torch.from_numpy(x).to(dev), torch.from_numpy(b).to(dev), act=act, alpha=alpha, gain=gain,
                      clamp=clamp, impl=impl)
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-12, atol=1e-12)


def test_bias_along_other_dim():
    x, b = torch.randn(4, 3, 6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    torch.testing.assert_close(ba.bias_act(x, b, dim=2, act="relu"), torch.relu(x + b) * np.sqrt(2))


@pytest.mark.parametrize("impl", ALL)
@pytest.mark.parametrize("act", list(ba.activation_funcs))
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_gradcheck_and_gradgradcheck(impl, act, clamp):
    # Inputs kept away from the kinks (0 for relu-like, +-clamp) where finite differences are undefined.
    x = torch.rand(2, 3, 2, 2, dtype=torch.float64) * 0.5 + 0.1
    x = torch.where(torch.rand_like(x) < 0.5, -x, x).to(device_of(impl)).requires_grad_(True)
    b = (torch.randn(3, dtype=torch.float64) * 0.01).to(device_of(impl)).requires_grad_(True)
    fn = lambda x, b: ba.bias_act(x, b, act=act, alpha=0.25 if act == "lrelu" else None, gain=0.9, clamp=clamp,
                                  impl=impl)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_vmap_matches_batch():
    x, b = torch.randn(4, 2, 5, 3, 3), torch.randn(4, 5)
    per_sample = torch.func.vmap(lambda xi, bi: ba.bias_act(xi, bi, act="lrelu", clamp=1.0))(x, b)
    want = torch.stack([ba.bias_act(x[i], b[i], act="lrelu", clamp=1.0) for i in range(4)])
    torch.testing.assert_close(per_sample, want)


def test_bad_input_errors():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="unknown act='gelu'.*lrelu"):
        ba.bias_act(x, act="gelu")
    with pytest.raises(ValueError, match=r"does not match x.shape\[1\]"):
        ba.bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match="clamp"):
        ba.bias_act(x, clamp=-1)


def test_reference_and_transforms_are_not_fallbacks(monkeypatch, caplog):
    monkeypatch.setattr(_impl, "_reported", set())
    monkeypatch.setenv("LEAKGUARD_OPS", "strict")
    x = torch.zeros(1, 2, 2, 2, dtype=torch.bfloat16)    # no fused kernel takes bfloat16 on CPU
    with caplog.at_level(logging.INFO, logger="cuda_ops"):
        ba.bias_act(x, impl="ref")                       # asking for the reference is not a fallback
        # Under vmap the reference is the intended path, even in strict mode.
        torch.func.vmap(lambda xi: ba.bias_act(xi, impl="auto"))(torch.zeros(2, 1, 2, 2, 2, dtype=torch.bfloat16))
    assert not caplog.records
    with pytest.raises(_impl.OpFallbackError, match="bias_act.*strict"):
        ba.bias_act(x, impl="auto")
