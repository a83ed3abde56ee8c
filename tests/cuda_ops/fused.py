"""What the fused-kernel tests share: the implementations to test on this machine, and a comparison of
an op's value, gradient and second derivative between an implementation and the reference."""
import pytest
import torch

# Every fused implementation; the CUDA one is marked and skips without a GPU.
FUSED = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.cuda)]
ALL = [pytest.param("ref", id="ref"), *FUSED]


def device_of(impl: str) -> str:
    return "cuda" if impl == "cuda" else "cpu"


def derivatives(fn, inputs: list[torch.Tensor], seed: int = 0):
    """y = fn(*inputs), the gradients of <y, dy>, and the gradients of <those gradients, v>, all detached.
    The second derivatives are what R1 and path-length regularisation differentiate through."""
    inputs = [t.detach().requires_grad_(True) for t in inputs]
    y = fn(*inputs)
    gen = torch.Generator().manual_seed(seed)
    dy = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y).requires_grad_(True)
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
    vs = [torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g) for g in grads]
    total = sum((g * v).sum() for g, v in zip(grads, vs) if g.requires_grad)
    second = torch.autograd.grad(total, [*inputs, dy], allow_unused=True) if torch.is_tensor(total) else []
    second = [torch.zeros_like(t) if s is None else s for s, t in zip(second, [*inputs, dy])]
    return [y.detach(), *[g.detach() for g in grads], *[s.detach() for s in second]]


def assert_same(got: list[torch.Tensor], want: list[torch.Tensor], rtol: float, atol: float):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, (i, g.shape, w.shape)
        torch.testing.assert_close(g.double().cpu(), w.double().cpu(), rtol=rtol, atol=atol, msg=lambda m: f"output {i}: {m}")
