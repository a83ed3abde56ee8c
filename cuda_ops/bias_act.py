"""bias_act: adds a per-channel bias, applies an activation, scales by a gain and clamps, in one op.

Same signature, activations and default gains as the official StyleGAN2-ADA op. The gains keep the
signal variance of a unit-variance input roughly constant (sqrt(2) after ReLU-like activations).
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cuda_ops import _impl, _kernels
from cuda_ops._bias_act_fused import bias_act_fused


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float  # slope parameter; only lrelu uses it
    def_gain: float   # output scale that keeps unit variance


activation_funcs: dict[str, Activation] = {
    "linear":   Activation(lambda x, alpha: x,                          0.0, 1.0),
    "relu":     Activation(lambda x, alpha: F.relu(x),                  0.0, float(np.sqrt(2))),
    "lrelu":    Activation(lambda x, alpha: F.leaky_relu(x, alpha),     0.2, float(np.sqrt(2))),
    "tanh":     Activation(lambda x, alpha: torch.tanh(x),              0.0, 1.0),
    "sigmoid":  Activation(lambda x, alpha: torch.sigmoid(x),           0.0, 1.0),
    "elu":      Activation(lambda x, alpha: F.elu(x),                   0.0, 1.0),
    "selu":     Activation(lambda x, alpha: F.selu(x),                  0.0, 1.0),
    "softplus": Activation(lambda x, alpha: F.softplus(x),              0.0, 1.0),
    "swish":    Activation(lambda x, alpha: torch.sigmoid(x) * x,       0.0, float(np.sqrt(2))),
}


# On the CPU the kernel computes tanh, exp and log1p with scalar libm calls, which torch's vectorised
# versions beat (tanh about 10x); the piecewise-linear activations, all that StyleGAN2 uses, are 4-5x
# faster fused. So impl='auto' runs the CPU kernel for these and the reference for the rest.
CPU_FUSED_BY_DEFAULT = ("linear", "relu", "lrelu")


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
             impl: str = "auto") -> torch.Tensor:
    """y = clamp(act(x + b) * gain, -clamp, clamp), with b [x.shape[dim]] broadcast along `dim`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"bias_act expects a tensor, got {type(x).__name__}")
    if act not in activation_funcs:
        raise ValueError(f"bias_act: unknown act={act!r}; valid: {', '.join(activation_funcs)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be None or >= 0, got {clamp}")
    if b is not None:
        if b.ndim != 1 or not (0 <= dim < x.ndim) or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: b of shape {tuple(b.shape)} does not match x.shape[{dim}] "
                             f"for x of shape {tuple(x.shape)}")
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    if impl == "auto" and x.device.type == "cpu" and act not in CPU_FUSED_BY_DEFAULT:
        impl = "ref"  # a choice of the faster path, not a fallback: see CPU_FUSED_BY_DEFAULT
    impl = _impl.resolve("bias_act", impl, x)
    if impl == "ref" or (b is not None and _impl.under_transform(b)):
        return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)
    return bias_act_fused(x, b, dim, act, alpha, gain, clamp, _kernels.get(impl))


def _bias_act_ref(x, b, dim, spec, alpha, gain, clamp):
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
