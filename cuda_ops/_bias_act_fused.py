"""bias_act through the fused kernels, with first and second derivatives from the same kernels.

With z = x + b and y = g(z) = clamp(act(z) * gain), the kernel computes g (grad 0), u * g'(z)
(grad 1) and u * g''(z) (grad 2) in one pass each. The backward is dx = dy * g'(z), db = sum(dx);
its own backward (R1 and path length differentiate through it) needs d(dx)/d(dy) = g'(z) and
d(dx)/dz = dy * g''(z). Third derivatives are not supported and say so.
"""
from types import ModuleType

import torch

# Kernel activation codes (cuda_ops/csrc/ops.h).
ACT_CODES = {"linear": 0, "relu": 1, "lrelu": 2, "tanh": 3, "sigmoid": 4, "elu": 5, "selu": 6,
             "softplus": 7, "swish": 8}
_PIECEWISE_LINEAR = {"linear", "relu", "lrelu"}  # g'' = 0 almost everywhere


class _Params:
    def __init__(self, kernel: ModuleType, dim: int, act: str, alpha: float, gain: float, clamp: float | None):
        self.kernel, self.dim, self.act = kernel, dim, act
        self.code, self.alpha, self.gain = ACT_CODES[act], alpha, gain
        self.clamp = -1.0 if clamp is None else float(clamp)

    def run(self, u: torch.Tensor, b: torch.Tensor, ref: torch.Tensor, grad: int) -> torch.Tensor:
        return self.kernel.bias_act(u, b, ref, grad, self.dim, self.code, self.alpha, self.gain, self.clamp)

    def sum_to_bias(self, t: torch.Tensor) -> torch.Tensor:
        return t.sum([i for i in range(t.ndim) if i != self.dim])


def bias_act_fused(x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float,
                   clamp: float | None, kernel: ModuleType) -> torch.Tensor:
    if b is None:
        b = x.new_empty([0])
    elif b.dtype != x.dtype:
        raise ValueError(f"bias_act: b has dtype {b.dtype} but x has {x.dtype}; cast b to x's dtype")
    return _BiasAct.apply(x, b, _Params(kernel, dim, act, alpha, gain, clamp))


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, p):
        ctx.p = p
        ctx.save_for_backward(x, b)
        return p.run(x, b, x.new_empty([0]), 0)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        p = ctx.p
        dx = _BiasActGrad.apply(dy, x, b, p)
        db = p.sum_to_bias(dx) if b.numel() and ctx.needs_input_grad[1] else None
        return dx, db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * g'(x + b), as a function of (dy, x, b) so that it can be differentiated once more."""

    @staticmethod
    def forward(ctx, dy, x, b, p):
        ctx.p = p
        ctx.save_for_backward(dy, x, b)
        return p.run(dy, b, x, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_dx):
        dy, x, b = ctx.saved_tensors
        p = ctx.p
        d_dy = p.run(d_dx, b, x, 1) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        if p.act not in _PIECEWISE_LINEAR and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_z = p.run(d_dx * dy, b, x, 2)
            d_x = d_z if ctx.needs_input_grad[1] else None
            d_b = p.sum_to_bias(d_z) if b.numel() and ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None
