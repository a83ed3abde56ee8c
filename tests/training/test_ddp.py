"""Two processes (gloo, CPU) train to the same parameters as one process with the same global batch."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

from tests.training.tiny import tiny_config
from training import distributed, loop

REPO = Path(__file__).resolve().parents[2]

# 3 rounds of 8 images, 4 per forward pass: one process accumulates 2 chunks, two processes take one each.
DDP = ["train.batch=8", "train.batch_gpu=4", "train.kimg=0.024", "model.mbstd_group=4", "augment.mode=ada",
       "augment.p=0.3", "augment.interval=1", "augment.speed_kimg=0.1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, tmp: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = tiny_config(Path(tmp), *DDP)
    dist = distributed.init(cfg.train.device)
    try:
        state = loop.train(cfg, dist, Path(tmp) / "run" if dist.is_main else None)
        if dist.is_main:
            torch.save({"G": state.G.state_dict(), "D": state.D.state_dict(), "G_ema": state.G_ema.state_dict(),
                        "p": state.augment.p.clone(), "pl_mean": state.pl_mean.clone()}, out)
    finally:
        distributed.shutdown()


def test_two_gloo_processes_match_one(tmp_path):
    one, two = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    mp.start_processes(worker, args=(1, free_port(), str(tmp_path / "a"), one), nprocs=1, start_method="spawn")
    mp.start_processes(worker, args=(2, free_port(), str(tmp_path / "b"), two), nprocs=2, start_method="spawn")
    a, b = torch.load(one), torch.load(two)
    for net in ("G", "D", "G_ema"):
        for k in a[net]:  # w_avg included: it moves once per round over all ranks' fakes
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-5, atol=1e-5, msg=f"{net}.{k}")
    torch.testing.assert_close(a["p"], b["p"])
    torch.testing.assert_close(a["pl_mean"], b["pl_mean"], rtol=1e-5, atol=1e-6)
    assert a["p"].item() != 0.3  # ADA used the all-reduced signs


def test_torchrun_launches_the_cli_with_rank_0_writing(tmp_path):
    """The documented command line: torchrun runs `-m training.cli train`; one run folder, written by rank 0,
    whose final snapshot holds the same G_ema as one process training in this test."""
    from tests.training.tiny import TINY
    from training import rundir
    from training.distributed import Dist
    from training.snapshot import read_snapshot
    args = TINY + ["train.batch=8", "train.batch_gpu=4", "train.kimg=0.016", "model.mbstd_group=4",
                   f"run_dir={tmp_path / 'runs'}", "name=tr"]
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--nproc_per_node=2", "--master_port", str(free_port()),
                           "-m", "training.cli", "train", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run folder:") == 1 and "done: 0.016 kimg" in done.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    (snap,) = rundir.list_snapshots(run_dir / rundir.CHECKPOINTS)
    saved = read_snapshot(snap)
    assert saved["nimg"] == 16
    one = loop.train(tiny_config(tmp_path, *args[len(TINY):]), Dist(), tmp_path / "one")
    for k, v in one.G_ema.state_dict().items():
        if not k.endswith("w_avg"):
            torch.testing.assert_close(saved["networks"]["G_ema"]["state_dict"][k], v, rtol=1e-5, atol=1e-5,
                                       msg=f"G_ema.{k}")
