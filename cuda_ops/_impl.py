"""Chooses which implementation of an op runs, and says so once when it is not the one asked for.

`impl='auto'` picks the fastest implementation available for the tensor's device, and the
reference under torch.func transforms (vmap, grad), which the fused kernels do not support.
Setting `LEAKGUARD_OPS=strict` turns every fallback into an error, so a user who expects the
fused path on a cluster never trains ten times slower without knowing it.
"""
import logging
import os

import torch

IMPLS = ("auto", "cuda", "cpu", "ref")

_log = logging.getLogger("cuda_ops")
_reported: set[tuple[str, str]] = set()


class OpFallbackError(RuntimeError):
    """Raised instead of falling back to the reference when LEAKGUARD_OPS=strict."""


def strict_mode() -> bool:
    return os.environ.get("LEAKGUARD_OPS", "").strip().lower() == "strict"


# torch.func wraps tensors (BatchedTensor, GradTrackingTensor); fused kernels cannot see through them.
# Detected by feature, not by torch version.
_is_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)


def _under_transform(x: torch.Tensor) -> bool:
    return bool(_is_wrapped(x)) if _is_wrapped is not None else False


def _fused_unavailable_reason(op: str, impl: str, x: torch.Tensor) -> str:
    """Why the fused kernel for `op` cannot run here. The kernels land with the fused-ops work;
    until then every device reports the same reason."""
    return f"no fused {impl} kernel for {op} is built in this version of cuda_ops"


def resolve(op: str, impl: str, x: torch.Tensor) -> str:
    """Returns the implementation name that will run `op` on `x` ('ref' for now, or a fused one)."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: impl={impl!r} is not one of {', '.join(IMPLS)}")
    if impl == "ref":
        return "ref"
    if _under_transform(x):
        return "ref"  # by design, not a fallback: per-sample gradients go through the reference
    wanted = ("cuda" if x.device.type == "cuda" else "cpu") if impl == "auto" else impl
    reason = _fused_unavailable_reason(op, wanted, x)
    _report_fallback(op, wanted, reason)
    return "ref"


def _report_fallback(op: str, wanted: str, reason: str) -> None:
    if strict_mode():
        raise OpFallbackError(f"{op}: LEAKGUARD_OPS=strict and the {wanted} implementation is unavailable: {reason}")
    if (op, wanted) not in _reported:
        _reported.add((op, wanted))
        _log.info("%s: using the pure-torch reference instead of %s (%s)", op, wanted, reason)
