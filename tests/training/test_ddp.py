"""Two processes (gloo, CPU) train to the same parameters as one process with the same global batch."""
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from tests.training.tiny import tiny_config
from training import distributed, loop

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
        for k in a[net]:
            if k.endswith("w_avg"):  # a running mean of w, averaged over ranks rather than sequential
                continue
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-5, atol=1e-5, msg=f"{net}.{k}")
    torch.testing.assert_close(a["p"], b["p"])
    torch.testing.assert_close(a["pl_mean"], b["pl_mean"], rtol=1e-5, atol=1e-6)
    assert a["p"].item() != 0.3  # ADA used the all-reduced signs
