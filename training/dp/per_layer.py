"""Per-unit gradients of D's real-data loss (no R1) from one batched forward and backward, layer by layer.

Every parameter D trains is the weight or bias of a Conv2dLayer or a FullyConnectedLayer, whose output y is
linear in the weight before bias and activation. So, as Opacus' grad samplers do per sample, per unit u:

    dL_u/dW = weight_gain * sum_{j in u} dy_j/dW^T B_j        dL_u/db = bias_gain * sum_{j in u, pixels} B_j

with B_j = dL/dy_j, read at the layer's `linear_out` tap, and the layer's input A_j, read by a forward
pre-hook; for a convolution the sum is one grouped weight-backward (cuda_ops.conv2d_resample_weight_grads),
for a dense layer one batched matmul. With L = sum_u L_u, dL/dy_j = dL_u/dy_j as long as image j reaches no
other unit's loss. In D only minibatch-stddev mixes images, so the images go through in an order that makes its
groups exactly those one unit forms alone (min(group_size, k) of one person's k images); where no order can
(group size unset or above k), `unsupported` says so and per_unit_grads takes torch.func instead.

The ops run their fused kernels (no torch.func), D's frozen blocks without autograd. Equal to the batch-of-one
loop in float64 for every architecture, conditional D, minibatch-stddev and frozen blocks (tests).
"""
import torch

from cuda_ops.conv2d_resample import conv2d_resample_weight_grads
from training import losses
from training.networks.discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue
from training.networks.layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer
from training.networks.mapping import MappingNetwork

# The modules this path knows: each treats every image on its own, except minibatch-stddev, whose groups the image
# order keeps within a unit. Any other module in D (one that might mix images) sends per_unit_grads to torch.func,
# where no two units share a forward pass.
KNOWN = (Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, MappingNetwork, Conv2dLayer, FullyConnectedLayer,
         MinibatchStdLayer, torch.nn.Identity)


def trained_layers(D: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """D's Conv2dLayers and FullyConnectedLayers with a trained weight or bias, by name."""
    return {name: m for name, m in D.named_modules() if isinstance(m, (Conv2dLayer, FullyConnectedLayer))
            and (m.weight.requires_grad or (m.bias is not None and m.bias.requires_grad))}


def _mbstd_group(D: torch.nn.Module, k: int) -> int:
    """The minibatch-stddev group size a unit of k images forms alone (1 without the layer: no mixing)."""
    mbstd = getattr(D.b4, "mbstd", None)
    if mbstd is None:
        return 1
    return k if mbstd.group_size is None else min(mbstd.group_size, k)


def unsupported(D: torch.nn.Module, layers: dict[str, torch.nn.Module], U: int, k: int) -> str | None:
    """Why U units of k images cannot take this path (None when they can); `layers`: trained_layers(D)."""
    strangers = sorted({type(m).__name__ for m in D.modules() if type(m) not in KNOWN})
    if strangers:
        return f"modules not known to keep images apart: {', '.join(strangers)}"
    owned = {f"{name}.{p}" for name, m in layers.items() for p in ("weight", "bias")}
    others = [name for name, p in D.named_parameters() if p.requires_grad and name not in owned]
    if others:
        return f"trained parameters outside Conv2dLayer and FullyConnectedLayer: {', '.join(others)}"
    upsampling = [name for name, m in layers.items() if isinstance(m, Conv2dLayer) and m.up > 1]
    if upsampling:
        return f"upsampling convolutions: {', '.join(upsampling)}"
    mbstd = getattr(D.b4, "mbstd", None)
    if mbstd is not None and U > 1 and (mbstd.group_size is None or mbstd.group_size > k or k % mbstd.group_size):
        return (f"minibatch-stddev group size {mbstd.group_size} does not split each unit's {k} images into "
                "groups of their own")
    return None


def _unit_order(U: int, k: int, G: int) -> torch.Tensor:
    """The order [G, U, k / G] of the U k images (given unit-major) under which minibatch-stddev's groups
    (image i in group i mod (U k / G)) are each unit's own (image j of a unit alone in group j mod (k / G))."""
    return torch.arange(U * k).view(U, G, k // G).transpose(0, 1).flatten()


def _by_unit(t: torch.Tensor, U: int, k: int, G: int) -> torch.Tensor:
    """[U k, ...] in _unit_order -> [k, U, ...]: the k images of each unit (a strided view; copied by the reader)."""
    return t.unflatten(0, (G, U, k // G)).transpose(1, 2).flatten(0, 1)


def unit_grads(D: torch.nn.Module, layers: dict[str, torch.nn.Module], frozen: list[int], img: torch.Tensor,
               c: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """{name: [U, *shape]} per trained parameter for img [U, k, C, H, W], c [U, k, c_dim], weight [U, k];
    `layers`: trained_layers(D); `frozen`: D's leading blocks that train nothing (run without autograd)."""
    U, k = img.shape[:2]
    G = _mbstd_group(D, k)
    order = _unit_order(U, k, G)
    inputs, outputs = {}, {}

    def keep(store, name, tensor):
        if name in store:
            raise RuntimeError(f"per-layer gradients: layer {name} ran twice in one pass")
        store[name] = tensor

    hooks = [m.register_forward_pre_hook(lambda m, args, name=name: keep(inputs, name, args[0].detach()))
             for name, m in layers.items()]
    hooks += [m.linear_out.register_forward_hook(lambda m, args, out, name=name: keep(outputs, name, out))
              for name, m in layers.items()]
    try:
        x, skip = None, img.flatten(0, 1)[order]
        with torch.no_grad():
            x, skip = D.blocks(x, skip, frozen)
        x, skip = D.blocks(x, skip, D.block_resolutions[len(frozen):])
        logits = D.head(x, skip, c.flatten(0, 1)[order] if c.shape[-1] else None)
    finally:
        for hook in hooks:
            hook.remove()
    loss = (weight.flatten()[order] * losses.d_logistic_real(logits)).sum()
    names = list(layers)
    dy = torch.autograd.grad(loss, [outputs[name] for name in names])

    grads = {}
    for name, B in zip(names, dy):
        m = layers[name]
        A = _by_unit(inputs[name].to(m.weight.dtype), U, k, G)   # [k, U, C, H, W] or [k, U, in]
        B = _by_unit(B.to(m.weight.dtype), U, k, G)                # [k, U, O, H', W'] or [k, U, out]
        if isinstance(m, Conv2dLayer):
            dW = conv2d_resample_weight_grads(A, B, tuple(m.weight.shape[2:]), m.resample_filter, down=m.down,
                                              padding=m.padding, flip_weight=True) * m.weight_gain
            db = B.sum(dim=[0, 3, 4])
        else:
            dW = torch.einsum("kui,kuo->uoi", A, B) * m.weight_gain
            db = B.sum(dim=0) * m.bias_gain
        for param, g in (("weight", dW), ("bias", db)):
            p = getattr(m, param)
            if isinstance(p, torch.nn.Parameter) and p.requires_grad:
                grads[f"{name}.{param}"] = g
    return grads
