"""Exact resume: N rounds, stop, resume, N rounds == 2N rounds; snapshots survive SIGKILL mid-write;
resuming with another config or a file that is not a snapshot is a clear error."""
import os
import signal
import subprocess
import sys

import pytest
import torch

from tests.training.tiny import tiny_config
from training import loop, rundir
from training.checkpoint import CheckpointError
from training.distributed import Dist
from training.snapshot import read_snapshot

# Lazy R1 and path length every 2 rounds, style mixing and ADA with a fast controller: every
# piece of state a resume must restore is exercised within 6 rounds.
RESUME = ["augment.mode=ada", "augment.p=0.2", "augment.interval=1", "augment.speed_kimg=0.1",
          "train.batch=4", "train.batch_gpu=2"]


def run(tmp_path, kimg, *overrides, resume=None, run_dir=None):
    cfg = tiny_config(tmp_path, *RESUME, f"train.kimg={kimg}", "train.snapshot_kimg=0.012", *overrides)
    run_dir = run_dir or rundir.new_run_dir(cfg.run_dir, cfg.name)
    return loop.train(cfg, Dist(), run_dir, resume), run_dir


def assert_same_state(a, b):
    for name in ("G", "D", "G_ema"):
        for (k, x), (_, y) in zip(getattr(a, name).state_dict().items(), getattr(b, name).state_dict().items()):
            assert torch.equal(x, y), f"{name}.{k} differs"
    for name in ("opt_G", "opt_D"):
        sa, sb = getattr(a, name).state_dict()["state"], getattr(b, name).state_dict()["state"]
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), f"{name}[{i}].{k}"
    assert torch.equal(a.pl_mean, b.pl_mean)
    assert torch.equal(a.augment.p, b.augment.p)
    assert (a.nimg, a.round) == (b.nimg, b.round)


def test_resume_is_bitwise_exact(tmp_path):
    full, _ = run(tmp_path / "a", 0.024)                      # 6 rounds of 4 images
    half, run_dir = run(tmp_path / "b", 0.012)                # 3 rounds, snapshot at 12 images
    snap = rundir.list_snapshots(run_dir / rundir.CHECKPOINTS)[-1]
    assert read_snapshot(snap)["nimg"] == 12
    resumed, _ = run(tmp_path / "b", 0.024, resume=snap, run_dir=run_dir)
    assert full.augment.p.item() != 0.2  # ADA moved p, so its state mattered
    assert_same_state(full, resumed)


def test_a_resume_under_another_thread_count_says_its_path_will_differ(tmp_path, caplog):
    """The snapshot records its numerics; a resume under another CPU thread count still resumes, with one
    warning naming what changed (float sums round otherwise from there on)."""
    _, run_dir = run(tmp_path, 0.012)
    snap = rundir.list_snapshots(run_dir / rundir.CHECKPOINTS)[-1]
    saved = read_snapshot(snap)["extra"]["numerics"]
    assert saved == {"torch": str(torch.__version__), "device": "cpu", "threads": torch.get_num_threads(),
                     "ops": os.environ.get("LEAKGUARD_OPS", "").strip().lower() or "auto"}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        with caplog.at_level("WARNING", logger="training.snapshot"):
            resumed, _ = run(tmp_path, 0.016, resume=snap, run_dir=run_dir)
    finally:
        torch.set_num_threads(threads)
    assert resumed.nimg == 16
    (warning,) = [r.getMessage() for r in caplog.records if "other numerics" in r.getMessage()]
    assert f"threads {threads} -> {threads + 1}" in warning and str(snap) in warning


def test_resume_auto_finds_the_latest_snapshot(tmp_path):
    _, run_dir = run(tmp_path, 0.012)
    cfg = tiny_config(tmp_path, *RESUME)
    assert rundir.resolve_resume("auto", cfg.run_dir, cfg.name) == rundir.list_snapshots(run_dir / "checkpoints")[-1]
    assert rundir.resolve_resume(str(run_dir), cfg.run_dir, cfg.name).name == "snapshot-0000000012.pt"
    with pytest.raises(FileNotFoundError, match="resume=auto: no intact snapshot"):
        rundir.resolve_resume("auto", cfg.run_dir, "other")


def test_resume_with_a_different_architecture_is_refused(tmp_path):
    _, run_dir = run(tmp_path, 0.012)
    snap = rundir.list_snapshots(run_dir / "checkpoints")[-1]
    with pytest.raises(CheckpointError, match=r"model\.channel_max: 16 -> 32"):
        run(tmp_path, 0.024, "model.channel_max=32", resume=snap, run_dir=run_dir)
    with pytest.raises(CheckpointError, match=r"loss\.r1_gamma: 1\.0 -> 2\.0"):
        run(tmp_path, 0.024, "loss.r1_gamma=2.0", resume=snap, run_dir=run_dir)


def test_resume_from_a_file_that_is_not_a_snapshot(tmp_path):
    from training.checkpoint import save_networks
    from training.networks import Generator
    nets = tmp_path / "nets.pt"
    save_networks(nets, {"G": Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=8, img_channels=3,
                                        synthesis_kwargs=dict(channel_base=64, channel_max=8))})
    with pytest.raises(CheckpointError, match="holds networks only"):
        read_snapshot(nets)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a LeakGuard training snapshot"):
        read_snapshot(junk)


# Writes one snapshot, then hangs halfway through the next, through the helper save_snapshot writes with.
KILLED_WRITER = r"""
import sys, time, torch
from pathlib import Path
from leakguard.atomic import atomic_open
folder = Path(sys.argv[1])
with atomic_open(folder / "snapshot-0000000001.pt", "wb") as f:
    torch.save({"format": "leakguard.train/1", "nimg": 1, "payload": torch.zeros(10)}, f)
with atomic_open(folder / "snapshot-0000000002.pt", "wb") as f:
    f.write(b"PK\x03\x04" + bytes(1 << 20)); f.flush()  # part of the file, then a hang, as if the disk were slow
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigkill_during_a_snapshot_write_keeps_the_previous_one(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder)], stdout=subprocess.PIPE,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert any(p.name.endswith(".tmp") for p in folder.iterdir())  # the interrupted write is there...
    snaps = rundir.list_snapshots(folder)                              # ...but never listed as a snapshot
    assert [p.name for p in snaps] == ["snapshot-0000000001.pt"]
    assert read_snapshot(snaps[-1])["nimg"] == 1
