"""Our networks against the official StyleGAN2-ADA outputs in ../shared/fixtures/stylegan2."""
import pytest
import torch

from tests.conftest import load_fixture, rel_err
from training.networks import Discriminator, Generator

CASES = ["g32", "g32c"]
TOL = 1e-5


@pytest.fixture(autouse=True)
def fused_ops_only(monkeypatch):
    """The networks run their ops with impl='auto'; strict mode makes any fallback to the reference an
    error, so these tests check the fused kernels of this machine against the official outputs."""
    monkeypatch.setenv("LEAKGUARD_OPS", "strict")


def build(name):
    meta, d = load_fixture(name)
    G = Generator(**meta["G_kwargs"]).eval()
    D = Discriminator(**meta["D_kwargs"]).eval()
    G.load_state_dict({k[2:]: torch.from_numpy(d[k]) for k in d.files if k.startswith("G/")}, strict=True)
    D.load_state_dict({k[2:]: torch.from_numpy(d[k]) for k in d.files if k.startswith("D/")}, strict=True)
    return meta, d, G, D


@pytest.mark.parametrize("name", CASES)
def test_state_dict_names_and_parameter_counts(name):
    meta, d, G, D = build(name)
    assert list(G.state_dict()) == [k[2:] for k in d.files if k.startswith("G/")]
    assert list(D.state_dict()) == [k[2:] for k in d.files if k.startswith("D/")]
    assert sum(p.numel() for p in G.parameters()) == meta["params"]["G"]
    assert sum(p.numel() for p in D.parameters()) == meta["params"]["D"]


@pytest.mark.parametrize("name", CASES)
def test_mapping(name):
    meta, d, G, _ = build(name)
    z, c = torch.from_numpy(d["z"]), torch.from_numpy(d["c"])
    with torch.no_grad():
        assert rel_err(G.mapping(z, c), d["ws"]) <= TOL
        assert rel_err(G.mapping(z, c, truncation_psi=meta["truncation_psi"]), d["ws_trunc"]) <= TOL


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("fused_modconv", [True, False])
def test_synthesis(name, fused_modconv):
    _, d, G, _ = build(name)
    with torch.no_grad():
        for ws, noise_mode, key in [("ws", "const", "img"), ("ws_trunc", "const", "img_trunc"),
                                    ("ws", "none", "img_nonoise")]:
            img = G.synthesis(torch.from_numpy(d[ws]), noise_mode=noise_mode, fused_modconv=fused_modconv)
            assert rel_err(img, d[key]) <= TOL, key


@pytest.mark.parametrize("name", CASES)
def test_full_generator_call(name):
    meta, d, G, _ = build(name)
    with torch.no_grad():
        img = G(torch.from_numpy(d["z"]), torch.from_numpy(d["c"]), truncation_psi=meta["truncation_psi"],
                noise_mode="const")
    assert rel_err(img, d["img_trunc"]) <= TOL


@pytest.mark.parametrize("name", CASES)
def test_discriminator(name):
    _, d, _, D = build(name)
    c = torch.from_numpy(d["c"])
    with torch.no_grad():
        assert rel_err(D(torch.from_numpy(d["img"]), c), d["logits_fake"]) <= TOL
        assert rel_err(D(torch.from_numpy(d["real"]), c), d["logits_real"]) <= TOL
