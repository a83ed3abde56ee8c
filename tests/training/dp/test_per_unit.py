"""Per-unit gradients of D's real terms (logistic loss and R1), per layer and by torch.func, equal a loop over
single units (one image, or one person's images) to 1e-6 in float64, for every D architecture, with the
loop on the fused kernels (strict: no fallback) and on the reference. And the clipped sum moves by
at most C when one unit comes or goes, whatever its images."""
import numpy as np
import pytest
import torch

from leakguard.privacy import clip_and_accumulate
from training import losses
from training.dp import per_layer
from training.dp.per_unit import per_unit_grads, trainable
from training.dp.stream import padded
from training.dp.units import PoissonSampler, UnitTable
from training.networks import Discriminator

SMALL = dict(channel_base=64, channel_max=8, img_resolution=16, img_channels=3)


def make_D(architecture="resnet", c_dim=0, mbstd_channels=0, mbstd_group=2):
    torch.manual_seed(0)
    D = Discriminator(c_dim=c_dim, architecture=architecture, mapping_kwargs=dict(num_layers=1),
                      epilogue_kwargs=dict(mbstd_group_size=mbstd_group, mbstd_num_channels=mbstd_channels), **SMALL)
    return D.double().requires_grad_(True)


def batch_of_one(D, img, c, weight, r1_weight):
    """The oracle: each unit alone through plain autograd (the training path's losses)."""
    out = []
    for u in range(len(img)):
        D.zero_grad(set_to_none=True)
        x = img[u].clone().requires_grad_(True)
        logits = D(x, c[u] if c.shape[-1] else None)
        loss = losses.d_logistic_real(logits)
        if r1_weight:
            loss = loss + r1_weight * losses.r1_penalty(x, logits)
        (weight[u] * loss).sum().backward()
        out.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p) for _, p in trainable(D)])
    return [torch.stack(per_param) for per_param in zip(*out)]


def units_input(U=4, k=2, c_dim=0, seed=1):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(U, k, 3, 16, 16, generator=g, dtype=torch.float64)
    weight = torch.full([U, k], 1.0 / k, dtype=torch.float64)
    if U > 1:
        weight[1] = torch.tensor([1.0] + [0.0] * (k - 1))  # a person with one image, padded by repeats
        img[1, 1:] = img[1, :1]
    c = torch.eye(max(c_dim, 1), dtype=torch.float64)[torch.randint(max(c_dim, 1), [U, k], generator=g)][..., :c_dim]
    return img, c, weight


@pytest.mark.parametrize("ops", ["fused", "ref"])
@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_per_unit_gradients_equal_a_loop_over_units(architecture, ops, monkeypatch):
    monkeypatch.setenv("LEAKGUARD_OPS", "strict" if ops == "fused" else "ref")
    D = make_D(architecture)
    img, c, weight = units_input()
    for r1_weight in (0.0, 0.35):
        got = per_unit_grads(D, img, c, weight, r1_weight)
        expected = batch_of_one(D, img, c, weight, r1_weight)
        assert len(got) == len(expected) == len(list(D.parameters()))
        for (name, _), a, b in zip(trainable(D), got, expected):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=f"{architecture} {name} r1={r1_weight}")
        assert any(float(g.abs().max()) > 1e-4 for g in got)  # not trivially zero


def test_conditional_D_and_minibatch_stddev_within_one_person(monkeypatch):
    """With privacy.unit=identity, minibatch-stddev groups form within a person's k images."""
    monkeypatch.setenv("LEAKGUARD_OPS", "strict")
    D = make_D("resnet", c_dim=2, mbstd_channels=1, mbstd_group=2)
    img, c, weight = units_input(U=3, k=4, c_dim=2)
    got = per_unit_grads(D, img, c, weight, 0.2)
    for a, b in zip(got, batch_of_one(D, img, c, weight, 0.2)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("group, U, k", [(2, 3, 4), (4, 3, 4), (None, 1, 4), (1, 2, 3)])
def test_per_layer_and_vmap_both_equal_the_loop_with_minibatch_stddev(group, U, k, monkeypatch):
    """The per-layer pass orders the images so that minibatch-stddev groups are each unit's own
    (two groups of 2 in a person's 4 images, one group of 4, the whole unit, groups of one)."""
    monkeypatch.setenv("LEAKGUARD_OPS", "strict")
    D = make_D("resnet", c_dim=2, mbstd_channels=1, mbstd_group=group)
    img, c, weight = units_input(U=U, k=k, c_dim=2)
    assert per_layer.unsupported(D, per_layer.trained_layers(D), U, k) is None
    expected = batch_of_one(D, img, c, weight, 0.0)
    for method in ("per_layer", "vmap"):
        for (name, _), a, b in zip(trainable(D), per_unit_grads(D, img, c, weight, method=method), expected):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=f"{method} {name}")


def test_auto_takes_vmap_where_no_order_keeps_units_apart(monkeypatch):
    """Group size unset (the whole batch) or above k: a batched pass would mix units, so vmap."""
    for group in (None, 8):
        D = make_D("resnet", mbstd_channels=1, mbstd_group=group)
        img, c, weight = units_input(U=3, k=4)
        assert "minibatch-stddev group size" in per_layer.unsupported(D, per_layer.trained_layers(D), 3, 4)
        with pytest.raises(ValueError, match="no per-layer gradients here: minibatch-stddev"):
            per_unit_grads(D, img, c, weight, method="per_layer")
        monkeypatch.setattr(per_layer, "unit_grads", lambda *a: pytest.fail("per-layer pass taken"))
        for a, b in zip(per_unit_grads(D, img, c, weight), batch_of_one(D, img, c, weight, 0.0)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        monkeypatch.undo()


def test_a_module_the_per_layer_path_does_not_know_sends_it_to_vmap(monkeypatch):
    """A layer that might mix images (here a batch norm) is not trusted: torch.func keeps units apart."""
    D = make_D("resnet")
    D.b4.norm = torch.nn.BatchNorm1d(1).double()
    reason = per_layer.unsupported(D, per_layer.trained_layers(D), 4, 2)
    assert reason == "modules not known to keep images apart: BatchNorm1d"
    monkeypatch.setattr(per_layer, "unit_grads", lambda *a: pytest.fail("per-layer pass taken"))
    img, c, weight = units_input()
    per_unit_grads(D, img, c, weight)


def test_per_layer_refuses_R1_and_an_unknown_method():
    D = make_D()
    img, c, weight = units_input()
    with pytest.raises(ValueError, match="R1 needs a second-order gradient"):
        per_unit_grads(D, img, c, weight, 0.3, method="per_layer")
    with pytest.raises(ValueError, match="method='loop' is not one of auto, per_layer, vmap"):
        per_unit_grads(D, img, c, weight, method="loop")


class People:
    """Identity-labelled images (uint8) as a training dataset presents them."""

    def __init__(self, counts, seed=0, huge_person=None):
        rng = np.random.default_rng(seed)
        self.identities = np.repeat(np.arange(len(counts)), counts)
        self.images = rng.standard_normal([len(self.identities), 3, 16, 16])
        if huge_person is not None:
            self.images[self.identities == huge_person] = 1e6  # far outside [-1, 1]

    def __len__(self):
        return len(self.identities)


def clipped_sum(D, data, k, C, units=None):
    table = UnitTable(data, "identity")
    sampler = PoissonSampler(table, q=1.0, k=k, key=7)
    chosen = range(len(table)) if units is None else units
    idx, w = zip(*(padded(sampler.images(u, 0), k) for u in chosen))
    img = torch.as_tensor(data.images[np.stack(idx)])  # [U, k, 3, 16, 16]
    weight = torch.as_tensor(np.stack(w))
    summed = [torch.zeros_like(p) for _, p in trainable(D)]
    grads = per_unit_grads(D, img, torch.zeros(*img.shape[:2], 0, dtype=img.dtype), weight, r1_weight=0.5)
    clip_and_accumulate(grads, C, summed)
    return torch.cat([s.flatten() for s in summed])


@pytest.mark.parametrize("huge", [False, True])
def test_one_person_moves_the_clipped_sum_by_at_most_C_however_many_images(huge):
    D, C, k = make_D("resnet"), 0.05, 3
    for extra_images in (1, 3, 12):  # person 0 with fewer, as many as, or many more images than k
        counts = [extra_images, 2, 3, 4]
        data = People(counts, huge_person=0 if huge else None)
        with_person = clipped_sum(D, data, k, C)
        without = clipped_sum(D, data, k, C, units=[1, 2, 3])
        change = float((with_person - without).norm())
        assert change <= C * (1 + 1e-9), (extra_images, change)
        if not huge:
            assert change > 0.5 * C  # gradients here are far above C: clipping is what bounds them


def test_one_image_moves_the_clipped_sum_by_at_most_C():
    D, C = make_D("skip"), 0.05
    data = People([1] * 5, seed=3)
    table = UnitTable(data, "image")
    assert len(table) == 5
    img = torch.as_tensor(data.images)[:, None]  # [5, 1, 3, 16, 16]
    img[0] = 1e6
    weight = torch.ones(5, 1, dtype=torch.float64)

    def total(units):
        summed = [torch.zeros_like(p) for _, p in trainable(D)]
        clip_and_accumulate(per_unit_grads(D, img[units], torch.zeros(len(units), 1, 0, dtype=img.dtype),
                                           weight[units], 0.5), C, summed)
        return torch.cat([s.flatten() for s in summed])

    assert float((total([0, 1, 2, 3, 4]) - total([1, 2, 3, 4])).norm()) <= C * (1 + 1e-9)


@pytest.mark.cuda
@pytest.mark.parametrize("fp16", [False, True])
def test_per_layer_equals_the_loop_on_cuda(fp16, monkeypatch):
    """On a GPU: float32 (TF32 off) to 1e-4 of the largest gradient, and with fp16 blocks (channels last,
    conv_clamp), where the loop runs the same fp16 layers, to 2e-2."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    extra = dict(num_fp16_res=2, conv_clamp=256, block_kwargs=dict(fp16_channels_last=True)) if fp16 else {}
    D = Discriminator(c_dim=2, architecture="resnet", mapping_kwargs=dict(num_layers=1),
                      epilogue_kwargs=dict(mbstd_group_size=2, mbstd_num_channels=1), **SMALL, **extra)
    D = D.cuda().requires_grad_(True)
    img, c, weight = (t.float().cuda() for t in units_input(U=3, k=4, c_dim=2))
    assert per_layer.unsupported(D, per_layer.trained_layers(D), 3, 4) is None
    tol = 2e-2 if fp16 else 1e-4
    for (name, _), a, b in zip(trainable(D), per_unit_grads(D, img, c, weight, method="per_layer"),
                               batch_of_one(D, img, c, weight, 0.0)):
        assert float((a - b).abs().max()) <= tol * float(b.abs().max()) + 1e-6, name
