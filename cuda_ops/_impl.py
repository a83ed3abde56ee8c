"""Chooses which implementation of an op runs, and says so once when it is not the one asked for.

`impl='auto'` picks the fastest implementation available for the tensor's device, and the
reference under torch.func transforms (vmap, grad), which the fused kernels do not support.
Setting `LEAKGUARD_OPS=strict` turns every fallback into an error, so a user who expects the
fused path on a cluster never trains ten times slower without knowing it; `LEAKGUARD_OPS=ref` makes
'auto' run the reference everywhere (to rule the kernels out when debugging, or to time them).
"""
import logging

import torch

from cuda_ops import _kernels
from cuda_ops.ops_mode import mode

IMPLS = ("auto", "cuda", "cpu", "ref")

_log = logging.getLogger("cuda_ops")
_reported: set[tuple[str, str, str]] = set()  # (op, wanted, reason) already logged


class OpFallbackError(RuntimeError):
    """Raised instead of falling back to the reference when LEAKGUARD_OPS=strict."""


def strict_mode() -> bool:
    return mode() == "strict"


# torch.func wraps tensors (BatchedTensor, GradTrackingTensor); fused kernels cannot see through them.
# Detected by feature, not by torch version.
_is_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)


def under_transform(x: torch.Tensor) -> bool:
    return bool(_is_wrapped(x)) if _is_wrapped is not None else False


def resolve(op: str, impl: str, x: torch.Tensor) -> str:
    """The implementation that will run `op` on `x`: 'cuda', 'cpu' or 'ref'."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl={impl!r} is not one of {', '.join(IMPLS)}")
    if impl == "ref" or (impl == "auto" and mode() == "ref"):
        return "ref"
    if under_transform(x):
        return "ref"  # by design, not a fallback: per-sample gradients go through the reference
    device = x.device.type
    if device not in ("cpu", "cuda"):
        _report_fallback(op, impl, f"no fused kernels for {device} tensors")
        return "ref"
    if impl != "auto" and impl != device:
        raise ValueError(f"{op}: impl={impl!r} cannot run a tensor on {x.device}; use impl='auto' or '{device}'")
    reason = _kernels.unavailable_reason(device, x.dtype)
    if reason is None:
        return device
    _report_fallback(op, device, reason)
    return "ref"


def explain(device: str, dtype: torch.dtype = torch.float32) -> tuple[str, str]:
    """(implementation, why) for impl='auto' on a `dtype` tensor on `device`, without logging: for
    `leakguard doctor`."""
    if mode() == "ref":
        return "ref", "LEAKGUARD_OPS=ref"
    reason = _kernels.unavailable_reason(device, dtype)
    if reason is None:
        return device, f"fused {device} kernels loaded"
    return "ref", reason


def _report_fallback(op: str, wanted: str, reason: str) -> None:
    if strict_mode():
        raise OpFallbackError(f"{op}: LEAKGUARD_OPS=strict and the {wanted} implementation is unavailable: {reason}")
    if (op, wanted, reason) not in _reported:
        _reported.add((op, wanted, reason))
        _log.warning("%s: using the pure-torch reference instead of %s (%s)", op, wanted, reason)
