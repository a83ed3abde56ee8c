"""The networks on a GPU: official parity in float32, and the fp16 path that only runs on CUDA."""
import pytest
import torch

from tests.conftest import rel_err
from tests.training.test_parity import CASES, build
from training.networks import Discriminator, Generator

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def _exact_float32():
    # TF32 would trade the parity tolerance for speed; compare real float32.
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("name", CASES)
def test_official_parity_on_cuda(name):
    meta, d, G, D = build(name)
    G, D = G.cuda(), D.cuda()
    t = lambda k: torch.from_numpy(d[k]).cuda()
    with torch.no_grad():
        assert rel_err(G.mapping(t("z"), t("c")).cpu(), d["ws"]) <= 1e-5
        for fused in [True, False]:
            assert rel_err(G.synthesis(t("ws"), noise_mode="const", fused_modconv=fused).cpu(), d["img"]) <= 1e-5
        assert rel_err(D(t("img"), t("c")).cpu(), d["logits_fake"]) <= 1e-5
        assert rel_err(D(t("real"), t("c")).cpu(), d["logits_real"]) <= 1e-5


def fp16_pair():
    kw = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=64, img_channels=3, mapping_kwargs=dict(num_layers=2))
    G = Generator(**kw, synthesis_kwargs=dict(channel_base=2048, channel_max=64, num_fp16_res=4, conv_clamp=256,
                                              fp16_channels_last=True)).cuda().eval()
    D = Discriminator(c_dim=0, img_resolution=64, img_channels=3, channel_base=2048, channel_max=64, num_fp16_res=4,
                      conv_clamp=256, block_kwargs=dict(fp16_channels_last=True)).cuda().eval()
    return G, D


def test_fp16_layers_run_in_half_and_track_fp32():
    G, D = fp16_pair()
    dtypes = {}
    for name, m in G.synthesis.named_children():
        m.register_forward_hook(lambda mod, inp, out, name=name: dtypes.__setitem__(name, out[0].dtype))
    z = torch.randn(8, 32, device="cuda")
    with torch.no_grad():
        img16 = G(z, None, noise_mode="const")
        assert dtypes["b64"] == dtypes["b32"] == torch.float16 and dtypes["b4"] == torch.float32
        img32 = G(z, None, noise_mode="const", force_fp32=True)
        assert dtypes["b64"] == torch.float32
        assert img16.dtype == torch.float32
        assert rel_err(img16.cpu(), img32.cpu().numpy()) < 2e-2
        l16, l32 = D(img32, None), D(img32, None, force_fp32=True)
        assert torch.isfinite(l16).all() and (l16 - l32).abs().max() < 2e-2 * l32.abs().max() + 1e-2


def test_fp16_training_step_double_backward():
    G, D = fp16_pair()
    G.train(), D.train()
    img = G(torch.randn(4, 32, device="cuda"), None).detach().requires_grad_(True)
    logits = D(img, None)
    (r1_grads,) = torch.autograd.grad(logits.sum(), img, create_graph=True)
    r1 = r1_grads.square().sum(dim=[1, 2, 3]).mean()
    (torch.nn.functional.softplus(logits).mean() + r1).backward()
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_generate_cli_on_cuda(tmp_path):
    from training.cli import main
    assert main(["generate", "--random-init", "--resolution", "64", "--seeds", "0-3", "--device", "cuda",
                 "--outdir", str(tmp_path), "--grid"]) == 0
    assert (tmp_path / "grid.png").exists()
