"""The order in which training sees real images: a pure function of (seed, round), so resuming
at round k and splitting a round over ranks or accumulation steps give the same images.

Round k takes global stream positions [k*batch, (k+1)*batch); the stream walks a fresh random
permutation of the dataset each epoch. The round is cut into chunks of `batch_gpu` images;
rank r computes chunks r, r + world, r + 2 world, ... (one per accumulation step).
"""
import numpy as np
import torch


def chunk_ids(rank: int, world: int, accum: int) -> list[int]:
    """The chunks of a round that `rank` computes, in accumulation order."""
    return [a * world + rank for a in range(accum)]


class RoundSampler(torch.utils.data.Sampler):
    """A batch sampler for DataLoader: yields, per round from `start_round` on, this rank's dataset
    indices (its chunks, concatenated)."""

    def __init__(self, size: int, batch: int, batch_gpu: int, rank: int, world: int, seed: int,
                 start_round: int = 0):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        if batch % (batch_gpu * world) != 0:
            raise ValueError(f"train.batch={batch} must be a multiple of train.batch_gpu={batch_gpu} x {world} "
                             "processes")
        self.size, self.batch, self.batch_gpu = size, batch, batch_gpu
        self.chunks = chunk_ids(rank, world, batch // (batch_gpu * world))
        self.seed = seed
        self.start_round = start_round
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        return self._perm

    def round_indices(self, k: int) -> list[int]:
        out = []
        for c in self.chunks:
            start = k * self.batch + c * self.batch_gpu
            for pos in range(start, start + self.batch_gpu):
                out.append(int(self._permutation(pos // self.size)[pos % self.size]))
        return out

    def __iter__(self):
        k = self.start_round
        while True:
            yield self.round_indices(k)
            k += 1

    def __len__(self) -> int:  # infinite; DataLoader only needs it for len(loader)
        return 2 ** 62
