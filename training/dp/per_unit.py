"""Exact per-unit gradients of D's real-data loss, by torch.func: vmap over units of grad.

For unit u with images x_j, weights w_j (1/count, 0 for padding) and labels c_j:

    L_u(theta) = sum_j w_j * [ softplus(-D(x_j)) + r1_weight * |grad_x D(x_j)|^2 ]

with the real-image loss and R1 of training.losses, so a private and a plain D train on one definition.

so R1 (r1_weight = gamma/2 times its lazy interval, or 0) sits inside the gradient that is clipped.
A unit's images go through D together (minibatch-stddev groups, when on, form within one person);
no two units ever share a forward pass. Under torch.func the ops run their pure-torch reference
(cuda_ops._impl.resolve), which the tests check against a loop over units with the fused kernels.
"""
from functools import partial

import torch
from torch.func import functional_call, grad, vjp, vmap

from training import losses


def trainable(D: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in D.named_parameters() if p.requires_grad]


def _unit_loss(params: dict, D: torch.nn.Module, constants: dict, img: torch.Tensor, c: torch.Tensor | None,
               weight: torch.Tensor, r1_weight: float) -> torch.Tensor:
    def logits(x):  # [k, C, H, W] -> [k, 1]
        return functional_call(D, ({**constants, **params},), (x, c))

    if r1_weight:
        out, pullback = vjp(logits, img)
        (grad_x,) = pullback(torch.ones_like(out))  # [k, C, H, W]
        return (weight * (losses.d_logistic_real(out) + r1_weight * losses.r1_of_grad(grad_x))).sum()
    return (weight * losses.d_logistic_real(logits(img))).sum()


def per_unit_grads(D: torch.nn.Module, img: torch.Tensor, c: torch.Tensor, weight: torch.Tensor,
                   r1_weight: float = 0.0) -> list[torch.Tensor]:
    """[U, *p.shape] per trainable parameter of D (in named_parameters order), for img [U, k, C, H, W],
    c [U, k, c_dim] and weight [U, k]."""
    if img.ndim != 5 or weight.shape != img.shape[:2] or c.shape[:2] != img.shape[:2]:
        raise ValueError(f"per_unit_grads: expected img [U, k, C, H, W], c [U, k, c_dim] and weight [U, k]; got "
                         f"{tuple(img.shape)}, {tuple(c.shape)}, {tuple(weight.shape)}")
    named = trainable(D)
    params = {name: p.detach() for name, p in named}
    constants = {name: t.detach() for name, t in list(D.named_parameters()) + list(D.named_buffers())
                 if name not in params}
    loss = partial(_unit_loss, D=D, constants=constants, r1_weight=float(r1_weight))
    if c.shape[-1] == 0:  # unconditional D takes c=None
        grads = vmap(lambda x, w: grad(loss)(params, img=x, c=None, weight=w))(img, weight)
    else:
        grads = vmap(lambda x, cc, w: grad(loss)(params, img=x, c=cc, weight=w))(img, c, weight)
    return [grads[name] for name, _ in named]
