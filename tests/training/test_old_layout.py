"""Files written by the flat `training/` layout (commit ec324fb, tests/fixtures/old_layout) load with
today's code and compute what the old code computed from them: a network checkpoint, and a training
snapshot resumed for two more rounds."""
from pathlib import Path

import torch

from tests.fixtures.old_layout.make_fixture import RESUME, outputs
from tests.training.tiny import tiny_config
from training import loop, rundir
from training.checkpoint import load_any, load_networks
from training.distributed import Dist
from training.networks import Discriminator, Generator

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "old_layout"


def expected() -> dict:
    return torch.load(OLD / "expected.pt", weights_only=True)


def assert_close(ours: dict, theirs: dict) -> None:
    # Bit-identical on the machine that wrote the fixture; the tolerance admits another CPU's vector width.
    for key in ("img", "logits"):
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-5, msg=key)


def test_old_network_checkpoint_loads_with_every_tensor_in_place():
    nets = load_networks(OLD / "networks.pt")
    assert isinstance(nets["G_ema"], Generator) and isinstance(nets["D"], Discriminator)
    assert nets["extra"] == {"note": "old layout fixture"}
    raw = torch.load(OLD / "networks.pt", weights_only=True)["networks"]
    for name in ("G", "D", "G_ema"):
        saved = raw[name]["state_dict"]
        ours = nets[name].state_dict()
        assert set(ours) == set(saved)
        assert all(torch.equal(ours[k], saved[k]) for k in saved), name
    assert_close(outputs(nets["G_ema"], nets["D"]), expected()["networks"])


def test_old_snapshot_opens_as_networks():
    nets = load_any(OLD / "snapshot.pt")
    assert nets["extra"]["nimg"] == 12
    assert_close(outputs(nets["G_ema"], nets["D"]), expected()["networks"])


def test_old_snapshot_resumes_to_what_the_old_code_computed(tmp_path):
    cfg = tiny_config(tmp_path, *RESUME, "train.kimg=0.02", "train.snapshot_kimg=0.012")
    state = loop.train(cfg, Dist(), rundir.new_run_dir(cfg.run_dir, cfg.name), OLD / "snapshot.pt")
    want = expected()["resumed"]
    assert state.nimg == want["nimg"] == 20
    assert_close(outputs(state.G_ema.eval(), state.D.eval()), want)
