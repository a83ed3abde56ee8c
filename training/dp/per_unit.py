"""Exact per-unit gradients of D's real-data loss.

For unit u with images x_j, weights w_j (1/count, 0 for padding) and labels c_j:

    L_u(theta) = sum_j w_j * [ softplus(-D(x_j)) + r1_weight * |grad_x D(x_j)|^2 ]

with the real-image loss and R1 of training.losses, so a private and a plain D train on one definition;
R1 (r1_weight = gamma/2 times its lazy interval, or 0) sits inside the gradient that is clipped.
No two units ever share a minibatch-stddev group.

Two methods, equal to a batch-of-one loop in float64 (tests):
- per layer (training.dp.per_layer), for steps without R1: one batched forward and backward of all units'
  images, and each layer's per-unit weight gradients from its inputs and output gradients. The fast path.
- torch.func, vmap over units of grad: for R1 steps (a second-order gradient) and any D the per-layer path
  cannot take. Under torch.func the ops run their pure-torch reference (cuda_ops._impl.resolve).

With D's first blocks frozen (train.freeze_d) and R1 in the step, the penalty's input gradient runs back
through the frozen blocks f, but f still needs no per-unit work. For image j with g_j = dD/dh_j at h = f(x)
(the trained rest's input gradient, per unit: minibatch-stddev mixes a unit's images) the penalty is
|J_f^T g_j|^2, and its gradient with respect to the trained weights is that of the surrogate 2 <M_j, g_j(theta)>
with M_j = J_f J_f^T g_j held fixed. So g is taken per unit under vmap (first order, the rest only), J_f^T g by
one vjp and M by one jvp through f over all images as a batch, and only the rest goes under vmap for the
second-order gradient.
"""
from functools import partial

import torch
from torch.func import functional_call, grad, jvp, vjp, vmap

from training import losses
from training.dp import per_layer

METHODS = ("auto", "per_layer", "vmap")


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


def frozen_blocks(D: torch.nn.Module) -> list[int]:
    """The resolutions of D's leading blocks (from the input side) none of whose parameters train."""
    out = []
    for res in D.block_resolutions:
        if any(p.requires_grad for p in getattr(D, f"b{res}").parameters()):
            break
        out.append(res)
    return out


class _Trained(torch.nn.Module):
    """D from block `start` on: what vmap differentiates when the blocks before it are frozen."""

    def __init__(self, D: torch.nn.Module, start: int):
        super().__init__()
        self.D, self.start = D, start

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        x, img = self.D.blocks(x, img, self.D.block_resolutions[self.start:])
        return self.D.head(x, img, c)


def _trained_part_grads_r1(D, frozen: list[int], img, c, weight, params: dict, constants: dict,
                           r1_weight: float) -> dict:
    """Per-unit gradients of the real loss with R1 when the `frozen` blocks run outside vmap (module doc)."""
    U, k = img.shape[:2]
    flat = img.flatten(0, 1)                                           # [U k, C, H, W]

    def prefix(x):  # the frozen blocks, each image on its own: (features,) or (features, skip image)
        return tuple(t for t in D.blocks(None, x, frozen) if t is not None)
    h, prefix_vjp = vjp(prefix, flat)
    feats = tuple(t.detach().unflatten(0, (U, k)) for t in h)
    rest = _Trained(D, len(frozen))
    held = {f"D.{name}": t for name, t in constants.items()}
    wrapped = {f"D.{name}": t for name, t in params.items()}
    cond = c if c.shape[-1] else None
    c_dim = None if cond is None else 0

    def logits_and_grad(p: dict, f: tuple, cu):  # one unit: D's outputs and their input gradient at h
        def logits(ff):
            return functional_call(rest, ({**held, **p},), (ff[0], ff[1] if len(ff) > 1 else None, cu))
        out, pullback = vjp(logits, f)
        (g,) = pullback(torch.ones_like(out))
        return out, g

    _, g = vmap(lambda f, cu: logits_and_grad(wrapped, f, cu), in_dims=(0, c_dim))(feats, cond)
    (grad_x,) = prefix_vjp(tuple(t.flatten(0, 1) for t in g))        # J_f^T g: D's input gradient
    _, m = jvp(prefix, (flat,), (grad_x,))                             # J_f J_f^T g
    fixed = tuple(t.detach().unflatten(0, (U, k)) for t in m)

    def loss(p: dict, f: tuple, mu: tuple, cu, wu) -> torch.Tensor:
        out, gu = logits_and_grad(p, f, cu)
        inner = sum(losses.per_image_dot(a, b) for a, b in zip(gu, mu))    # [k]
        return (wu * (losses.d_logistic_real(out) + r1_weight * 2 * inner)).sum()

    grads = vmap(lambda f, mu, cu, wu: grad(loss)(wrapped, f, mu, cu, wu),
                 in_dims=(0, 0, c_dim, 0))(feats, fixed, cond, weight)
    return {name: grads[f"D.{name}"] for name in params}


def per_unit_grads(D: torch.nn.Module, img: torch.Tensor, c: torch.Tensor, weight: torch.Tensor,
                   r1_weight: float = 0.0, method: str = "auto") -> list[torch.Tensor]:
    """[U, *p.shape] per trainable parameter of D (in named_parameters order), for img [U, k, C, H, W],
    c [U, k, c_dim] and weight [U, k]. `method`: auto (per layer where it can, else vmap), per_layer or vmap."""
    if img.ndim != 5 or weight.shape != img.shape[:2] or c.shape[:2] != img.shape[:2]:
        raise ValueError(f"per_unit_grads: expected img [U, k, C, H, W], c [U, k, c_dim] and weight [U, k]; got "
                         f"{tuple(img.shape)}, {tuple(c.shape)}, {tuple(weight.shape)}")
    if method not in METHODS:
        raise ValueError(f"per_unit_grads: method={method!r} is not one of {', '.join(METHODS)}")
    named = trainable(D)
    frozen = frozen_blocks(D)
    if method != "vmap":
        layers = per_layer.trained_layers(D)
        reason = ("R1 needs a second-order gradient" if r1_weight
                  else per_layer.unsupported(D, layers, *img.shape[:2]))
        if reason is None:
            grads = per_layer.unit_grads(D, layers, frozen, img, c, weight)
            return [grads[name] for name, _ in named]
        if method == "per_layer":
            raise ValueError(f"per_unit_grads: no per-layer gradients here: {reason}")
    params = {name: p.detach() for name, p in named}
    constants = {name: t.detach() for name, t in list(D.named_parameters()) + list(D.named_buffers())
                 if name not in params}
    if frozen and r1_weight:
        grads = _trained_part_grads_r1(D, frozen, img, c, weight, params, constants, float(r1_weight))
        return [grads[name] for name, _ in named]
    loss = partial(_unit_loss, D=D, constants=constants, r1_weight=float(r1_weight))
    if c.shape[-1] == 0:  # unconditional D takes c=None
        grads = vmap(lambda x, w: grad(loss)(params, img=x, c=None, weight=w))(img, weight)
    else:
        grads = vmap(lambda x, cc, w: grad(loss)(params, img=x, c=cc, weight=w))(img, c, weight)
    return [grads[name] for name, _ in named]
