"""The DP-SGD stages (Abadi et al. 2016) as plain functions on per-unit gradients:

    per-unit gradients [U, ...] -> clip_and_accumulate (each unit to norm <= C, summed)
                                -> (sum over processes, by the caller)
                                -> add_noise (N(0, sigma^2 C^2) per coordinate, once per step)
                                -> divide by the expected batch (by the caller)

A "unit" is what the guarantee protects: one image, or one person with all of their images. The
clipped sum changes by at most C when one unit is added or removed, whatever its data, which is the
sensitivity the accountant assumes (replacing a unit changes it by at most 2C).
"""
from typing import Sequence

import torch

NORM_EPS = 1e-6  # as Opacus: the factor is C / (norm + eps), so a unit at norm C is scaled by just under 1


def _check(grads: Sequence[torch.Tensor]) -> int:
    if not grads:
        raise ValueError("no per-unit gradients given")
    units = grads[0].shape[0]
    for g in grads:
        if g.ndim < 1 or g.shape[0] != units:
            raise ValueError(f"per-unit gradients must share their first (unit) dimension; got shapes "
                             f"{[tuple(t.shape) for t in grads]}")
    return units


def per_unit_norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of each unit's whole gradient (every parameter together): [U]."""
    _check(grads)
    return torch.stack([g.reshape(g.shape[0], -1).square().sum(dim=1) for g in grads]).sum(dim=0).sqrt()


def clip_and_accumulate(grads: Sequence[torch.Tensor], max_norm: float,
                        out: Sequence[torch.Tensor]) -> torch.Tensor:
    """Adds sum_u g_u * min(1, C / (|g_u| + eps)) to `out` (one tensor per parameter, in place) and
    returns the per-unit norms [U] before clipping.

    A unit whose gradient is not finite (huge pixel values can overflow D) contributes zero: the
    decision reads that unit alone, so the sensitivity stays C and nothing about other units leaks
    through a skipped step."""
    units = _check(grads)
    if len(out) != len(grads):
        raise ValueError(f"{len(grads)} per-unit gradients but {len(out)} accumulators")
    if not (max_norm > 0):
        raise ValueError(f"max_grad_norm C={max_norm!r} must be positive")
    norms = per_unit_norms(grads)  # [U]
    finite = norms.isfinite()
    factor = torch.where(finite, (max_norm / (norms + NORM_EPS)).clamp(max=1.0), torch.zeros_like(norms))
    all_finite = bool(finite.all())
    for g, acc in zip(grads, out):
        flat = g.reshape(units, -1)
        if not all_finite:
            flat = torch.where(finite[:, None], flat, torch.zeros_like(flat))
        acc.add_((factor.to(flat.dtype) @ flat).view_as(acc))  # [U] @ [U, P] -> [P]
    return norms


def add_noise(summed: Sequence[torch.Tensor], noise_multiplier: float, max_norm: float,
              generator: torch.Generator) -> None:
    """Adds N(0, (sigma C)^2) to every coordinate, in place. Call it once per step on one process
    (the noise is drawn from `generator`, whose seed must stay secret: a known seed voids the guarantee)."""
    std = float(noise_multiplier) * float(max_norm)
    for t in summed:
        t.add_(torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype), alpha=std)
