"""Private training over two gloo processes equals one process: each rank clips its own units, the
clipped sums are added over ranks, and the noise is added exactly once (on rank 0)."""
import os
from pathlib import Path

import torch
import torch.multiprocessing as mp

from tests.training.dp.test_dp_training import DP
from tests.training.test_ddp import free_port
from tests.training.tiny import tiny_config
from training import distributed, loop


def worker(rank: int, world: int, port: int, tmp: str, out: str, seed: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = tiny_config(Path(tmp), *DP, "train.kimg=0.016", f"privacy.secret_seed={seed}")
    dist = distributed.init(cfg.train.device)
    try:
        state = loop.train(cfg, dist, Path(tmp) / "run" if dist.is_main else None)
        torch.save({"D": state.D.state_dict(), "G": state.G.state_dict(), "key": state.privacy.key,
                    "epsilon": state.privacy.ledger.epsilon()}, f"{out}.{rank}")
    finally:
        distributed.shutdown()


def test_two_gloo_processes_match_one_with_noise_added_once(tmp_path):
    one, two = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    mp.start_processes(worker, args=(1, free_port(), str(tmp_path / "a"), one, "11"), nprocs=1, start_method="spawn")
    mp.start_processes(worker, args=(2, free_port(), str(tmp_path / "b"), two, "11"), nprocs=2, start_method="spawn")
    a, b = torch.load(f"{one}.0"), torch.load(f"{two}.0")
    for net in ("G", "D"):
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-5, atol=1e-5, msg=f"{net}.{k}")
    assert a["epsilon"] == b["epsilon"]


def test_every_process_uses_rank_0s_secret_key(tmp_path):
    out = str(tmp_path / "keys.pt")
    mp.start_processes(worker, args=(2, free_port(), str(tmp_path / "c"), out, "null"), nprocs=2, start_method="spawn")
    k0, k1 = torch.load(f"{out}.0")["key"], torch.load(f"{out}.1")["key"]
    assert k0 == k1 and k0.bit_length() > 64
