"""The `leakguard` command: generate and convert, in-process and through the installed script."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.checkpoint import CheckpointError, load_networks, save_networks
from training.cli import main
from training.cli.generate import parse_seeds
from training.inference import generate
from training.networks import Discriminator, Generator


def tiny_G(c_dim=0):
    return Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=16, img_channels=3,
                     mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=256, channel_max=16))


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("3-1")
    with pytest.raises(ValueError, match="'x'"):
        parse_seeds("1,x")


def test_generate_from_checkpoint_matches_direct_call(tmp_path):
    G = tiny_G().eval()
    ckpt = tmp_path / "net.pt"
    save_networks(ckpt, {"G_ema": G})
    assert main(["generate", "--network", str(ckpt), "--seeds", "3,5", "--trunc", "0.7",
                 "--outdir", str(tmp_path / "out"), "--grid", "--device", "cpu"]) == 0
    # Seed s means z = RandomState(s).randn(z_dim), as in the official scripts.
    z = torch.from_numpy(np.random.RandomState(5).randn(1, 8)).float()
    with torch.no_grad():
        want = (G(z, None, truncation_psi=0.7, noise_mode="const") * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    got = np.asarray(Image.open(tmp_path / "out" / "seed0005.png"))
    assert np.array_equal(got, want[0].permute(1, 2, 0).numpy())
    grid = np.asarray(Image.open(tmp_path / "out" / "grid.png"))
    assert grid.shape == (16, 32, 3) and np.array_equal(grid[:, 16:], got)


def test_generate_conditional_needs_a_class(tmp_path, capsys):
    ckpt = tmp_path / "c.pt"
    save_networks(ckpt, {"G_ema": tiny_G(c_dim=3)})
    assert main(["generate", "--network", str(ckpt), "--outdir", str(tmp_path / "o")]) == 2
    assert "pass --class 0..2" in capsys.readouterr().err
    assert main(["generate", "--network", str(ckpt), "--seeds", "1", "--class", "2", "--outdir", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "seed0001.png").exists()


def test_generate_errors_name_the_problem(tmp_path, capsys):
    assert main(["generate", "--network", str(tmp_path / "missing.pt"), "--outdir", str(tmp_path)]) == 2
    assert "missing.pt" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello")
    assert main(["generate", "--network", str(junk), "--outdir", str(tmp_path)]) == 2
    assert "junk.pt" in capsys.readouterr().err
    only_d = tmp_path / "d.pt"
    save_networks(only_d, {"D": Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=256,
                                              channel_max=16)})
    assert main(["generate", "--network", str(only_d), "--outdir", str(tmp_path)]) == 2
    assert "has no G_ema; it holds D" in capsys.readouterr().err


def test_random_init_grayscale_free_generate_helper():
    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=1,
                  synthesis_kwargs=dict(channel_base=64, channel_max=8))
    imgs = generate(G, [0, 1, 2], torch.device("cpu"), batch=2)
    assert imgs.shape == (3, 8, 8, 1) and imgs.dtype == np.uint8


def test_checkpoint_round_trip_and_errors(tmp_path):
    G, D = tiny_G(c_dim=2), Discriminator(c_dim=2, img_resolution=16, img_channels=3, channel_base=256,
                                          channel_max=16, mapping_kwargs=dict(num_layers=2))
    path = tmp_path / "ck.pt"
    save_networks(path, {"G": G, "D": D}, extra={"note": "x"})
    raw = torch.load(path, weights_only=True)             # plain data only
    assert raw["networks"]["G"]["kwargs"]["mapping_kwargs"] == {"num_layers": 2}
    nets = load_networks(path)
    for name, m in [("G", G), ("D", D)]:
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), nets[name].state_dict().values()))
    assert nets["extra"] == {"note": "x"}
    raw["networks"]["G"]["state_dict"].pop("mapping.fc0.weight")
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"network 'G'.*missing \['mapping.fc0.weight'\]"):
        load_networks(path)
    raw["networks"]["G"]["class"] = "os.system"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="unknown network class 'os.system'"):
        load_networks(path)
    torch.save({"format": "other"}, path)
    with pytest.raises(CheckpointError, match="format 'other'"):
        load_networks(path)


def test_console_script_is_installed(tmp_path):
    # The script sits beside the interpreter in a venv; fall back to PATH.
    exe = Path(sys.executable).with_name("leakguard")
    exe = str(exe) if exe.exists() else shutil.which("leakguard")
    if exe is None:
        pytest.skip("the leakguard console script is not installed (pip install -e .)")
    out = subprocess.run([exe, "generate", "--random-init", "--resolution", "8", "--seeds", "0-1",
                          "--outdir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0000.png", "seed0001.png"]
