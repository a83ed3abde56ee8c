"""The training steps: R1 and path-length gradients against an independent computation, lazy
regularization's lr/beta adjustment, gradient accumulation, and the non-finite gradient guard."""
import numpy as np
import pytest
import torch

from tests.training.tiny import ToyDataset, tiny_config
from training import steps
from training.data import Chunk
from training.distributed import Dist
from training.report import Reporter
from training.state import build_state, lazy_ratio

CHUNK_OVERRIDES = ["data.resolution=8", "model.mbstd_channels=0", "train.batch=4", "train.batch_gpu=2",
                   "loss.style_mixing=0"]


def make_state(tmp_path, *overrides, dataset=None):
    cfg = tiny_config(tmp_path, *CHUNK_OVERRIDES, *overrides)
    return build_state(cfg, dataset or ToyDataset(resolution=8), Dist(), Reporter(None))


def chunks_of(state, dataset):
    imgs = torch.as_tensor(dataset.images[:4]).float() / 127.5 - 1
    return [Chunk(img=imgs[i:i + 2], c=torch.zeros(2, 0), index=k) for k, i in enumerate((0, 2))]


def capture_grads(monkeypatch):
    """Replaces the optimizer step by a recorder of the summed gradients it would have applied."""
    seen = {}

    def record(state, opt, params, name):
        module = state.G if any(p is q for p in params for q in state.G.parameters()) else state.D
        seen[name] = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
        opt.zero_grad(set_to_none=True)
    monkeypatch.setattr(steps, "optimizer_step", record)
    return seen


def test_lazy_regularization_scales_lr_and_betas(tmp_path):
    state = make_state(tmp_path, "loss.r1_interval=16", "loss.pl_interval=4", "optim.g_lr=0.002",
                       "optim.d_lr=0.003", "optim.betas=[0.5,0.99]")
    d, g = state.opt_D.param_groups[0], state.opt_G.param_groups[0]
    assert d["lr"] == pytest.approx(0.003 * 16 / 17) and g["lr"] == pytest.approx(0.002 * 4 / 5)
    assert d["betas"] == pytest.approx((0.5 ** (16 / 17), 0.99 ** (16 / 17)))
    assert g["betas"] == pytest.approx((0.5 ** 0.8, 0.99 ** 0.8))
    plain = make_state(tmp_path, "loss.r1_gamma=0", "loss.pl_weight=0", "optim.d_lr=0.003")
    assert plain.opt_D.param_groups[0]["lr"] == 0.003 and plain.opt_D.param_groups[0]["betas"] == (0.0, 0.99)
    assert lazy_ratio(1) == 0.5


def test_r1_step_gradient_matches_autograd(tmp_path, monkeypatch):
    data = ToyDataset(resolution=8)
    state = make_state(tmp_path, "loss.r1_gamma=3.0", "loss.r1_interval=16", dataset=data)
    seen = capture_grads(monkeypatch)
    steps.r1_step(state, chunks_of(state, data), gain=16)

    # Independently: gamma/2 * interval * mean over the 4 images of |d D(x_i) / d x_i|^2.
    D = state.D.requires_grad_(True)
    x = torch.as_tensor(data.images[:4]).float() / 127.5 - 1
    penalties = []
    for i in range(4):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi, None).sum(), xi, create_graph=True)
        penalties.append(g.square().sum())
    loss = 3.0 / 2 * 16 * torch.stack(penalties).mean()
    names = [n for n, _ in D.named_parameters()]
    expected = torch.autograd.grad(loss, list(D.parameters()), allow_unused=True)
    for n, e in zip(names, expected):
        got = seen["D_r1"].get(n)
        if e is None:
            assert got is None or not got.any()
        else:
            torch.testing.assert_close(got, e, rtol=1e-4, atol=1e-7)


def test_pl_step_gradient_and_mean_match_an_explicit_jacobian(tmp_path, monkeypatch):
    data = ToyDataset(resolution=8)
    state = make_state(tmp_path, "loss.pl_weight=2.0", "loss.pl_batch_shrink=1", "loss.pl_decay=0.01",
                       dataset=data)
    state.pl_mean.fill_(0.3)
    seen = capture_grads(monkeypatch)
    steps.pl_step(state, [c.index for c in chunks_of(state, data)], gain=4)

    G = state.G.requires_grad_(True)
    lengths = []
    for chunk in (0, 1):  # replay each chunk's random stream: z, labels, noise inputs, then y
        torch.manual_seed(steps.stream_seed(state.cfg.train.seed, 0, "G_pl", chunk))
        z = torch.randn(2, 16)
        torch.randint(16, [2])  # the label draw (len(dataset) = 16)
        ws = G.mapping(z, None, update_emas=False)
        img = G.synthesis(ws)
        y = torch.randn_like(img) / 8.0  # sqrt(H W) for 8x8
        for i in range(2):
            # J^T y for image i through an explicit vector-Jacobian product of the synthesis network
            (jty,) = torch.autograd.grad((img[i] * y[i]).sum(), ws, create_graph=True)
            lengths.append(jty[i].square().sum(1).mean().sqrt())
    lengths = torch.stack(lengths)
    loss = 4 * 2.0 * (lengths - 0.3).square().mean()
    expected = dict(zip([n for n, _ in G.named_parameters()],
                        torch.autograd.grad(loss, list(G.parameters()), allow_unused=True)))
    for n, e in expected.items():
        if e is not None:
            torch.testing.assert_close(seen["G_pl"][n], e, rtol=1e-4, atol=1e-7)
    assert state.pl_mean.item() == pytest.approx(0.3 + 0.01 * (lengths.mean().item() - 0.3), rel=1e-5)


def test_accumulation_matches_one_big_batch(tmp_path, monkeypatch):
    """batch_gpu only changes how a batch is split, not the gradient (the loss is the batch mean)."""
    data = ToyDataset(resolution=8)
    grads = []
    for batch_gpu in (2, 4):
        state = make_state(tmp_path, f"train.batch_gpu={batch_gpu}", "model.mbstd_channels=0", dataset=data)
        seen = capture_grads(monkeypatch)
        imgs = torch.as_tensor(data.images[:4]).float() / 127.5 - 1
        chunks = [Chunk(img=imgs[i:i + batch_gpu], c=torch.zeros(batch_gpu, 0), index=k)
                  for k, i in enumerate(range(0, 4, batch_gpu))]
        steps.r1_step(state, chunks, gain=1)
        grads.append(seen["D_r1"])
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-8)


def test_nan_guard_skips_the_step(tmp_path):
    data = ToyDataset(resolution=8)
    state = make_state(tmp_path, dataset=data)
    chunks = chunks_of(state, data)
    chunks[0].img[0, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in state.D.parameters()]
    steps.d_step(state, chunks)
    assert state.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, state.D.parameters()))
    assert all(p.grad is None for p in state.D.parameters())


def test_ema_follows_the_half_life(tmp_path):
    state = make_state(tmp_path, "train.ema_kimg=0.004", "train.ema_rampup=null")  # half-life 4 images = 1 round
    with torch.no_grad():
        for p in state.G.parameters():
            p.add_(1.0)
    old = [p.clone() for p in state.G_ema.parameters()]
    steps.update_ema(state)
    for o, e, g in zip(old, state.G_ema.parameters(), state.G.parameters()):
        torch.testing.assert_close(e, (o + g) / 2)  # beta = 0.5 ** (4 / 4)
    assert np.isfinite(sum(p.sum().item() for p in state.G_ema.parameters()))
