"""StyleGAN2 losses, each returning one value per sample ([N]); none of them calls backward.

Per-sample values are what differential privacy clips, so a sample's loss here never depends on
another sample's (except through D's minibatch-stddev layer, which DP configs switch off).
"""
import numpy as np
import torch
import torch.nn.functional as F


def _wide(t: torch.Tensor) -> torch.Tensor:
    """fp16 values (fp16 layers on CUDA) are summed in float32; float64 stays float64."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _per_sample(logits: torch.Tensor) -> torch.Tensor:
    if logits.ndim != 2 or logits.shape[1] != 1:
        raise ValueError(f"expected D logits [N, 1], got {tuple(logits.shape)}")
    return _wide(logits[:, 0])


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss (Goodfellow et al. 2014): -log sigmoid(D(G(z))) = softplus(-D(G(z)))."""
    return F.softplus(-_per_sample(fake_logits))  # [N]


def d_logistic_fake(fake_logits: torch.Tensor) -> torch.Tensor:
    """D loss on generated images: -log(1 - sigmoid(D(G(z)))) = softplus(D(G(z)))."""
    return F.softplus(_per_sample(fake_logits))  # [N]


def d_logistic_real(real_logits: torch.Tensor) -> torch.Tensor:
    """D loss on real images: -log sigmoid(D(x)) = softplus(-D(x))."""
    return F.softplus(-_per_sample(real_logits))  # [N]


def r1_penalty(real_img: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): |grad_x D(x)|^2 per real image; multiply by gamma/2 for the loss.

    `real_img` must require grad and `real_logits` be computed from it; the graph is kept so the
    penalty can be differentiated with respect to D's weights.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)  # [N, C, H, W]
    return r1_of_grad(grad)


def r1_of_grad(grad: torch.Tensor) -> torch.Tensor:
    """|grad_x D(x)|^2 per image from the input gradient [N, C, H, W] (the private D step takes it by vjp)."""
    return _wide(grad).square().sum(dim=[1, 2, 3])  # [N]


def per_image_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a_i, b_i> per image of two [N, C, H, W] tensors (the R1 surrogate of training.dp.per_unit)."""
    return (_wide(a) * _wide(b)).sum(dim=[1, 2, 3])  # [N]


def path_lengths(fake_img: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """|J_w^T y| per image (Karras et al. 2020, eq. 4), y ~ N(0, I) / sqrt(H W), averaged over the
    ws layers as in the official code; the graph is kept for the penalty's backward."""
    h, w = fake_img.shape[2], fake_img.shape[3]
    y = torch.randn_like(fake_img) / np.sqrt(h * w)  # [N, C, H, W]
    (grad,) = torch.autograd.grad((fake_img * y).sum(), ws, create_graph=True)  # [N, num_ws, w_dim]
    return _wide(grad).square().sum(dim=2).mean(dim=1).sqrt()  # [N]


def pl_penalty(lengths: torch.Tensor, pl_mean: torch.Tensor) -> torch.Tensor:
    """(|J_w^T y| - a)^2 per image, with `a` the running mean of path lengths before this batch.

    The official code first moves `a` towards this batch's mean; using the previous value keeps
    each sample's penalty independent of the rest of the batch (a 1% difference in `a`).
    """
    return (lengths - pl_mean.detach()).square()  # [N]
