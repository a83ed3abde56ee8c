"""Behaviour of the networks beyond the two official fixtures: every architecture option, the
official full-size parameter counts, truncation, w_avg tracking, noise modes, double backward and
per-sample gradients under torch.func."""
import itertools

import pytest
import torch

from training.networks import Discriminator, Generator

SMALL = dict(channel_base=256, channel_max=16)


def small_G(**kw):
    args = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(SMALL))
    args.update(kw)
    return Generator(**args)


def small_D(**kw):
    args = dict(c_dim=0, img_resolution=16, img_channels=3, **SMALL)
    args.update(kw)
    return Discriminator(**args)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("res,base,G_count,D_count", [
    (1024, 32768, 30_370_060, 29_012_513),   # config F
    (256, 16384, 24_767_458, 24_001_089),    # paper256
])
def test_official_full_size_parameter_counts(res, base, G_count, D_count):
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=8), synthesis_kwargs=dict(channel_base=base, channel_max=512))
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=base, channel_max=512)
    assert (n_params(G), n_params(D)) == (G_count, D_count)
    assert G.num_ws == 2 * int(torch.log2(torch.tensor(res))) - 2


@pytest.mark.parametrize("g_arch,d_arch,img_channels,c_dim,res", [
    *[(g, d, 3, 0, 16) for g, d in itertools.product(["orig", "skip", "resnet"], ["orig", "skip", "resnet"])],
    ("skip", "resnet", 1, 0, 8),
    ("resnet", "skip", 1, 4, 32),
    ("orig", "orig", 3, 2, 8),
])
def test_architectures_run_and_learn(g_arch, d_arch, img_channels, c_dim, res):
    G = small_G(c_dim=c_dim, img_resolution=res, img_channels=img_channels,
                synthesis_kwargs=dict(SMALL, architecture=g_arch, conv_clamp=256))
    D = small_D(c_dim=c_dim, img_resolution=res, img_channels=img_channels, architecture=d_arch,
                mapping_kwargs=dict(num_layers=2))
    z = torch.randn(4, 8)
    c = torch.eye(max(c_dim, 1))[torch.arange(4) % max(c_dim, 1)][:, :c_dim]
    img = G(z, c)
    assert img.shape == (4, img_channels, res, res) and torch.isfinite(img).all()
    logits = D(img, c)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    logits.sum().backward()
    # Every parameter takes part (no dead branches), except noise strengths, which are zero at init.
    dead = [n for n, p in itertools.chain(G.named_parameters(), D.named_parameters())
            if (p.grad is None or p.grad.abs().sum() == 0) and not n.endswith("noise_strength")]
    assert not dead


def test_mbstd_off_and_group_sizes():
    D0 = small_D(epilogue_kwargs=dict(mbstd_num_channels=0))
    assert D0.b4.mbstd is None and D0.b4.conv.weight.shape[1] == 16
    x = torch.randn(6, 3, 16, 16)
    assert D0(x, None).shape == (6, 1)
    # Each sample's score depends only on its own group: groups are i % (N / G).
    D2 = small_D(epilogue_kwargs=dict(mbstd_group_size=2, mbstd_num_channels=2)).eval()
    base = D2(x, None)
    x2 = x.clone()
    x2[0] += 1                                      # samples 0 and 3 share a group when N=6, G=2
    changed = (D2(x2, None) - base).abs().squeeze(1) > 0
    assert changed.tolist() == [True, False, False, True, False, False]
    with pytest.raises(ValueError, match="divisible by mbstd_group_size"):
        small_D(epilogue_kwargs=dict(mbstd_group_size=4))(torch.randn(6, 3, 16, 16), None)


def test_mapping_layers_and_features():
    G = small_G(mapping_kwargs=dict(num_layers=5, layer_features=12), c_dim=3)
    names = [n for n, _ in G.mapping.named_parameters()]
    assert [n for n in names if n.startswith("fc")][-2:] == ["fc4.weight", "fc4.bias"]
    assert G.mapping.fc0.weight.shape == (12, 8 + 8) and G.mapping.fc4.weight.shape == (8, 12)


def test_truncation_and_cutoff():
    G = small_G().eval()
    G.mapping.w_avg.copy_(torch.randn(8))
    z = torch.randn(3, 8)
    ws = G.mapping(z, None)
    assert ws.shape == (3, G.num_ws, 8)
    assert torch.allclose(G.mapping(z, None, truncation_psi=0), G.mapping.w_avg.expand_as(ws))
    half = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(half[:, :2], G.mapping.w_avg + 0.5 * (ws[:, :2] - G.mapping.w_avg))
    torch.testing.assert_close(half[:, 2:], ws[:, 2:])


def test_w_avg_tracking():
    G = small_G()
    z = torch.randn(5, 8)
    G.train()
    G.mapping(z, None)
    w = G.mapping(z, None, skip_w_avg_update=True)[:, 0]
    torch.testing.assert_close(G.mapping.w_avg, w.mean(0) * (1 - 0.995))  # one update from zero
    before = G.mapping.w_avg.clone()
    G.eval()
    G.mapping(z, None)
    G.mapping(z, None, update_emas=False)
    assert torch.equal(G.mapping.w_avg, before)
    G.mapping(z, None, update_emas=True)               # StyleGAN3-repo style explicit update
    assert not torch.equal(G.mapping.w_avg, before)


def test_noise_modes():
    G = small_G().eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.5)
        const = G(z, None, noise_mode="const")
        assert torch.equal(const, G(z, None, noise_mode="const"))
        assert not torch.equal(G(z, None, noise_mode="random"), G(z, None, noise_mode="random"))
        none = G(z, None, noise_mode="none")
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.zero_()
        torch.testing.assert_close(G(z, None, noise_mode="const"), none)
    with pytest.raises(ValueError, match="noise_mode='foo'"):
        G(z, None, noise_mode="foo")


def test_use_noise_false_has_no_noise_params():
    G = small_G(synthesis_kwargs=dict(SMALL, use_noise=False))
    assert not any("noise" in n for n in G.state_dict())


def test_fp16_resolutions_run_fp32_on_cpu():
    G16 = small_G(synthesis_kwargs=dict(SMALL, num_fp16_res=4, conv_clamp=256)).eval()
    G32 = small_G(synthesis_kwargs=dict(SMALL, num_fp16_res=0, conv_clamp=256)).eval()
    G32.load_state_dict(G16.state_dict())
    D16 = small_D(num_fp16_res=4, conv_clamp=256).eval()
    z = torch.randn(2, 8)
    img = G16(z, None, noise_mode="const")
    assert img.dtype == torch.float32
    assert torch.equal(img, G32(z, None, noise_mode="const"))
    assert D16(img, None).dtype == torch.float32


def test_flat_synthesis_kwargs_like_the_stylegan3_repo():
    a = small_G(synthesis_kwargs=dict(SMALL, architecture="resnet"))
    b = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), architecture="resnet", **SMALL)
    assert list(a.state_dict()) == list(b.state_dict())


def test_freeze_layers_keep_names_and_stop_gradients():
    D = small_D(block_kwargs=dict(freeze_layers=2))
    assert set(D.state_dict()) == set(small_D().state_dict())  # frozen layers hold buffers of the same names
    trainable = {n for n, _ in D.named_parameters()}
    assert "b16.fromrgb.weight" not in trainable and "b16.conv0.weight" not in trainable
    assert "b16.conv1.weight" in trainable


def test_double_backward_through_networks():
    """R1 and path-length regularisation differentiate gradients; check them in float64."""
    D = small_D(img_resolution=8, channel_base=32, channel_max=4, mapping_kwargs=dict(num_layers=1),
                c_dim=2).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    c = torch.eye(2, dtype=torch.float64)
    assert torch.autograd.gradgradcheck(lambda x: D(x, c), (x,), atol=1e-5)
    G = small_G(img_resolution=8, synthesis_kwargs=dict(channel_base=32, channel_max=4)).double().train()
    ws = torch.randn(1, G.num_ws, 8, dtype=torch.float64, requires_grad=True)
    for fused in [True, False]:
        fn = lambda ws: G.synthesis(ws, noise_mode="const", fused_modconv=fused)
        assert torch.autograd.gradcheck(fn, (ws,), atol=1e-5)
        assert torch.autograd.gradgradcheck(fn, (ws,), atol=1e-5)


def test_per_sample_gradients_with_vmap_match_batch_of_one(monkeypatch):
    """What differential privacy needs: torch.func per-sample gradients equal a loop over batch-of-one.
    Under vmap the ops take the reference; the loop takes the fused kernels (strict: no fallback)."""
    monkeypatch.setenv("LEAKGUARD_OPS", "strict")
    D = small_D(c_dim=3, mapping_kwargs=dict(num_layers=2), conv_clamp=256)
    params = {k: v.detach() for k, v in D.named_parameters()}
    buffers = {k: v.detach() for k, v in D.named_buffers()}
    x, c = torch.randn(5, 3, 16, 16), torch.eye(3)[torch.tensor([0, 1, 2, 0, 1])]

    def loss(p, xi, ci):
        logits = torch.func.functional_call(D, (p, buffers), (xi[None], ci[None]))
        return torch.nn.functional.softplus(logits).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, c)
    for i in range(5):
        D.zero_grad()
        torch.nn.functional.softplus(D(x[i:i + 1], c[i:i + 1])).sum().backward()
        for name, p in D.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("build,args,match", [
    (lambda: small_G(img_resolution=12), (), "power of two"),
    (lambda: small_G(synthesis_kwargs=dict(SMALL, architecture="unet")), (), "architecture='unet'"),
    (lambda: small_D(architecture="x"), (), "architecture='x'"),
    (lambda: small_D(img_resolution=4), (), "power of two >= 8"),
])
def test_constructor_errors(build, args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_call_errors_name_the_shapes():
    G, D = small_G(c_dim=2), small_D()
    with pytest.raises(ValueError, match=r"z must have shape \[N, 8\]"):
        G(torch.randn(2, 7), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"c must have shape \[N, 2\]"):
        G(torch.randn(2, 8), None)
    with pytest.raises(ValueError, match=r"ws must be \[N, 6, 8\]"):
        G.synthesis(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"img must be \[N, 3, 16, 16\]"):
        D(torch.randn(2, 3, 32, 32), None)
