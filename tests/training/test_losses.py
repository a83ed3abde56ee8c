"""Losses return per-sample values that match closed forms and an independent autograd computation."""
import math

import pytest
import torch

from training import losses
from training.networks import Discriminator, Generator


def test_logistic_losses_closed_form():
    logits = torch.tensor([[-2.0], [0.0], [3.0]])
    sig = torch.sigmoid(logits[:, 0])
    torch.testing.assert_close(losses.g_nonsaturating(logits), -torch.log(sig))
    torch.testing.assert_close(losses.d_logistic_fake(logits), -torch.log(1 - sig))
    torch.testing.assert_close(losses.d_logistic_real(logits), -torch.log(sig))


def test_r1_of_a_linear_critic_is_the_squared_weight_norm():
    w = torch.randn(3 * 4 * 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (x.flatten(1) @ w)[:, None]
    torch.testing.assert_close(losses.r1_penalty(x, logits), w.square().sum().expand(5))


def test_r1_matches_autograd_on_a_discriminator():
    D = Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=16,
                      epilogue_kwargs=dict(mbstd_num_channels=0)).double()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    ours = losses.r1_penalty(x, D(x, None))
    # Independently: the gradient of each sample's own logit (no minibatch-stddev coupling).
    for i in range(3):
        xi = x[i:i + 1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi, None).sum(), xi)
        torch.testing.assert_close(ours[i], g.square().sum(), rtol=1e-9, atol=1e-12)
    # And its weight gradient is the derivative of the penalty, checked in float64 against finite differences.
    p = next(D.parameters())
    (gp,) = torch.autograd.grad(ours.sum(), p)
    eps, idx = 1e-6, (0,) * p.ndim
    with torch.no_grad():
        p[idx] += eps
    up = losses.r1_penalty(x, D(x, None)).sum()
    with torch.no_grad():
        p[idx] -= 2 * eps
    down = losses.r1_penalty(x, D(x, None)).sum()
    assert math.isclose(gp[idx].item(), ((up - down) / (2 * eps)).item(), rel_tol=1e-3, abs_tol=1e-6)


def test_path_length_matches_an_explicit_jacobian():
    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=1, mapping_kwargs=dict(num_layers=1),
                  synthesis_kwargs=dict(channel_base=32, channel_max=4)).double()
    ws = G.mapping(torch.randn(2, 4, dtype=torch.float64), None).detach().requires_grad_(True)
    img = G.synthesis(ws, noise_mode="const")
    torch.manual_seed(7)
    lengths = losses.path_lengths(img, ws)
    torch.manual_seed(7)
    y = torch.randn_like(img) / 4.0  # the same draw; sqrt(H W) = 4
    for i in range(2):
        J = torch.autograd.functional.jacobian(lambda w: G.synthesis(w[None], noise_mode="const")[0], ws[i].detach())
        Jty = torch.einsum("chw,chwld->ld", y[i], J)  # [num_ws, w_dim]
        expected = Jty.square().sum(1).mean().sqrt()
        torch.testing.assert_close(lengths[i], expected, rtol=1e-9, atol=1e-12)


def test_pl_penalty_uses_the_given_mean_and_is_per_sample():
    lengths = torch.tensor([1.0, 2.0, 4.0])
    torch.testing.assert_close(losses.pl_penalty(lengths, torch.tensor(2.0)), torch.tensor([1.0, 0.0, 4.0]))
    torch.testing.assert_close(losses.pl_penalty(lengths[:1], torch.tensor(2.0)), torch.tensor([1.0]))


def test_losses_check_logit_shape():
    with pytest.raises(ValueError, match=r"\[N, 1\]"):
        losses.g_nonsaturating(torch.zeros(3))
