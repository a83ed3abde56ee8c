"""Multi-GPU (and multi-process CPU) training under torchrun: process group, rank, reductions.

Gradients are summed across ranks with one all-reduce per network and optimizer step, which is
what DistributedDataParallel's reducer does, done explicitly: R1 and path length differentiate
through `torch.autograd.grad(..., create_graph=True)`, which DDP's reducer hooks do not support,
and each round runs several forward passes per network before one backward.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (a no-op for one process); returns the tensor."""
        if self.world > 1:
            tdist.all_reduce(tensor, op=tdist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' is the local GPU when there is one, else the CPU; 'cuda' without a GPU is an error."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("train.device=cuda but torch sees no CUDA GPU; use train.device=cpu or auto")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init(device_name: str) -> Dist:
    """Joins the torchrun process group when launched by torchrun (WORLD_SIZE > 1), else one process.
    NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world > 1 and not tdist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, device=device)


def shutdown() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def broadcast_module(module: nn.Module, dist: Dist) -> None:
    """Copies rank 0's parameters and buffers to every rank, so all start identical."""
    if dist.world == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        tdist.broadcast(t.data, src=0)


def sum_tensors(tensors: list[torch.Tensor], dist: Dist) -> None:
    """All-reduces (sums) `tensors` in place over the ranks, as one flat buffer."""
    if dist.world == 1 or not tensors:
        return
    flat = torch.cat([t.flatten() for t in tensors])
    dist.all_sum(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def sum_gradients(module: nn.Module, dist: Dist) -> list[nn.Parameter]:
    """All-reduces (sums) the gradients of `module` as one flat buffer; returns the parameters that
    have one. Every rank must call this with the same module, even when its own grads are None.

    A parameter outside this step's graph (D's output bias under R1, say) keeps grad None on every
    rank, as in one process: Adam skips such a parameter, while a zero gradient would still advance
    its step count and decay its second moment."""
    params = [p for p in module.parameters() if p.requires_grad]
    if dist.world > 1:
        has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=dist.device)
        dist.all_sum(has_grad)
        params = [p for p, n in zip(params, has_grad.tolist()) if n > 0]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        sum_tensors([p.grad for p in params], dist)
    return [p for p in params if p.grad is not None]
