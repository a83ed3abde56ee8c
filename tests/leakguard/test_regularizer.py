"""The identity-leakage penalty and bank (leakguard.regularizer) against brute force: zero (and zero
gradient) below the threshold, the per-sample value from a loop over the bank, gradients reaching a
generator's weights, several matchers adding up, and the private bank's noise and clipping."""
import numpy as np
import pytest
import torch

from leakguard.matchers.synth import SynthMatcher, SynthMatcherB
from leakguard.regularizer import IdentityBank, IdentityLeakagePenalty, leakage_terms, private_centroids
from leakguard.regularizer import bank as bank_module
from training.synthfaces import SynthFaces


@pytest.fixture(scope="module")
def world(synth_matcher_weights, synth_b_matcher_weights):
    train = SynthFaces(32, num_identities=20, images_per_identity=5, seed=0)
    pixels = torch.from_numpy(train.render_all().copy())
    novel = torch.from_numpy(SynthFaces(32, num_identities=12, images_per_identity=1, identity_offset=700,
                                        seed=0).render_all().copy())
    matchers = {"synth": SynthMatcher(weights=synth_matcher_weights),
                "synth_b": SynthMatcherB(weights=synth_b_matcher_weights)}
    banks = {name: IdentityBank.from_embeddings(m.embed(pixels), train.identities, "centroid")
             for name, m in matchers.items()}
    return dict(pixels=pixels, ids=train.identities, novel=novel.float() / 127.5 - 1, matchers=matchers, banks=banks)


def _penalty(world, name="synth", threshold=0.5, margin=0.05, mode="centroid"):
    m = world["matchers"][name]
    bank = world["banks"][name] if mode == "centroid" else IdentityBank.from_embeddings(
        m.embed(world["pixels"]), world["ids"], "images")
    return IdentityLeakagePenalty(m, bank, threshold, margin)


def test_penalty_and_gradient_are_zero_when_every_fake_is_below_the_threshold(world):
    p = _penalty(world)
    fakes = world["novel"].clone().requires_grad_(True)
    s = p.scores(fakes).detach()
    p.threshold = float(s.max()) + p.margin + 1e-3          # every fake below tau - margin
    loss = p(fakes)
    assert torch.equal(loss, torch.zeros_like(loss))
    (grad,) = torch.autograd.grad(loss.sum(), fakes, allow_unused=True)
    assert grad is None or torch.count_nonzero(grad) == 0


@pytest.mark.parametrize("mode", ["centroid", "images"])
def test_per_sample_penalty_equals_a_brute_force_max_over_the_bank(world, mode, monkeypatch):
    p = _penalty(world, margin=0.05, mode=mode)
    fakes = world["novel"]
    p.threshold = float(p.scores(fakes).median()) + 0.05     # the hinge active for about half of them
    tau = p.threshold
    e = p.matcher(fakes).detach().double()
    rows = p.bank.rows.double()
    want = []
    for i in range(len(e)):                                  # the obviously correct loop
        best = max(float(e[i] @ rows[j]) for j in range(len(rows)))
        want.append(max(0.0, best - (tau - 0.05)))
    got = p(fakes).detach().double()
    assert got.tolist() == pytest.approx(want, abs=1e-5)
    assert (got > 0).any() and (got == 0).any()              # the hinge is active for some fakes, not all
    monkeypatch.setattr(bank_module, "CHUNK_ROWS", 7)       # the chunked max gives the same best row and score
    s7, i7 = p.bank.best(p.matcher(fakes).detach())
    s, i = (p.matcher(fakes).detach() @ p.bank.rows.T).max(dim=1)
    assert torch.equal(i7, i) and torch.allclose(s7, s, atol=1e-6)


def test_the_gradient_reaches_the_generator_and_not_the_matcher(world):
    from training.networks import Generator
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=256, channel_max=16)).train()
    p = _penalty(world, threshold=-1.0, margin=0.0)          # every fake above: every sample is penalised
    img = G(torch.randn(6, 8), None)                         # [6, 3, 32, 32] float32
    loss = p(img)
    assert loss.shape == (6,) and (loss > 0).all()
    loss.sum().backward()
    grads = [q.grad for q in G.parameters() if q.grad is not None]
    assert len(grads) > 0 and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert all(q.grad is None for q in p.matcher.net.parameters())


def test_several_matchers_add_up(world):
    a, b = _penalty(world, "synth", 0.3), _penalty(world, "synth_b", 0.3)
    fakes = world["novel"]
    terms = leakage_terms([a, b], fakes)
    assert torch.allclose(terms.penalty, a(fakes) + b(fakes), atol=1e-6)
    assert terms.above["synth"] == pytest.approx(float((a.scores(fakes) >= 0.3).float().mean()))
    assert set(terms.scores) == {"synth", "synth_b"}


def test_a_matcher_that_is_not_differentiable_is_refused(world):
    class Frozen:
        name, differentiable = "dlib", False
    with pytest.raises(ValueError, match="dlib is not differentiable"):
        IdentityLeakagePenalty(Frozen(), world["banks"]["synth"], 0.5)


def test_private_bank_clips_adds_noise_of_std_sigma_and_repeats_under_its_key():
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(300, 64, generator=g), dim=1)
    ids = np.repeat(np.arange(100), 3)
    units = np.arange(110)                                   # 10 people in the table have no image here: zero rows
    sigma = 0.5
    a = private_centroids(emb, ids, units, sigma, torch.Generator().manual_seed(7))
    b = private_centroids(emb, ids, units, sigma, torch.Generator().manual_seed(7))
    assert torch.equal(a.rows, b.rows) and a.private and len(a.rows) == 110
    # the noise itself: rebuild the unnormalised rows and compare with the clipped means
    means = torch.stack([emb[torch.from_numpy(ids == u)].mean(0) if u < 100 else torch.zeros(64) for u in units])
    noise = torch.randn([110, 64], generator=torch.Generator().manual_seed(7))
    want = torch.nn.functional.normalize(means / means.norm(dim=1, keepdim=True).clamp_min(1) + sigma * noise, dim=1)
    assert torch.allclose(a.rows, want, atol=1e-6)
    assert float(noise.std()) == pytest.approx(1.0, rel=0.05)
    with pytest.raises(ValueError, match="sigma"):
        private_centroids(emb, ids, units, 0.0, torch.Generator())
