"""Per round, this rank's privacy units of each private D step, as UnitChunks on the device.

The image indices come from PoissonSampler.plan, a pure function of (secret key, step); a
DataLoader reads them (in worker processes when data.workers > 0) and the chunks are cut again
from the same plan in the main process.
"""
import numpy as np
import torch

from training.data import UnitChunk
from training.dp.units import PoissonSampler
from training.stop import ignore_in_worker


def padded(images: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k image indices (the unit's, repeated cyclically) and their weights (1/count, then 0)."""
    n = len(images)
    weight = np.where(np.arange(k) < n, 1.0 / n, 0.0)
    return images[np.arange(k) % n], weight


def _collate(items):
    if not items:
        return None
    imgs = torch.from_numpy(np.stack([np.asarray(img) for img, _ in items]))        # [n, C, H, W] uint8
    labels = torch.from_numpy(np.stack([np.asarray(label) for _, label in items]))  # [n, c_dim]
    return imgs, labels


def joined(chunks: list[UnitChunk], per_pass: int) -> list[UnitChunk]:
    """Each run of `per_pass` consecutive chunks as one chunk (their units side by side; the first's index)."""
    groups = [chunks[i:i + per_pass] for i in range(0, len(chunks), per_pass)]
    return [UnitChunk(img=torch.cat([c.img for c in g]), c=torch.cat([c.c for c in g]),
                      weight=torch.cat([c.weight for c in g]), index=g[0].index) for g in groups]


class UnitStream:
    """Yields, per round from `start_round` on, d_steps lists of UnitChunks (one list per private D
    step t = round * d_steps + s; a list may be empty when this rank drew no unit)."""

    def __init__(self, dataset, sampler: PoissonSampler, k: int, units_per_chunk: int, d_steps: int, rank: int,
                 world: int, start_round: int, device: torch.device, workers: int):
        self.sampler, self.k, self.units_per_chunk, self.d_steps = sampler, k, units_per_chunk, d_steps
        self.rank, self.world, self.device = rank, world, device
        self.shape = (dataset.num_channels, dataset.resolution, dataset.resolution)
        self.label_dim = dataset.label_dim
        self.round = start_round
        self.loader = iter(torch.utils.data.DataLoader(
            dataset, batch_sampler=_RoundIndices(self, start_round), num_workers=workers, collate_fn=_collate,
            pin_memory=device.type == "cuda", persistent_workers=workers > 0, worker_init_fn=ignore_in_worker,
            prefetch_factor=2 if workers > 0 else None))

    def plans(self, r: int) -> list[list[tuple[int, list[np.ndarray]]]]:
        return [self.sampler.plan(r * self.d_steps + s, self.units_per_chunk, self.rank, self.world)
                for s in range(self.d_steps)]

    def indices(self, r: int) -> list[int]:
        return [int(i) for plan in self.plans(r) for _, units in plan for u in units for i in padded(u, self.k)[0]]

    def __next__(self) -> list[list[UnitChunk]]:
        batch = next(self.loader)
        plans = self.plans(self.round)
        self.round += 1
        if batch is None:
            return [[] for _ in plans]
        imgs = batch[0].to(self.device, non_blocking=True).to(torch.float32) / 127.5 - 1  # [n, C, H, W]
        labels = batch[1].to(self.device, non_blocking=True).to(torch.float32)           # [n, c_dim]
        out, offset = [], 0
        for plan in plans:
            chunks = []
            for index, units in plan:
                n = len(units) * self.k
                weight = np.stack([padded(u, self.k)[1] for u in units])  # [U, k]
                chunks.append(UnitChunk(img=imgs[offset:offset + n].reshape(len(units), self.k, *self.shape),
                                        c=labels[offset:offset + n].reshape(len(units), self.k, self.label_dim),
                                        weight=torch.as_tensor(weight, dtype=torch.float32, device=self.device),
                                        index=index))
                offset += n
            out.append(chunks)
        return out

    def __iter__(self):
        return self


class _RoundIndices(torch.utils.data.Sampler):
    """Batch sampler: every image index this rank reads in round r (all of its D steps), flattened."""

    def __init__(self, stream: UnitStream, start_round: int):
        self.stream, self.start_round = stream, start_round

    def __iter__(self):
        r = self.start_round
        while True:
            yield self.stream.indices(r)
            r += 1

    def __len__(self) -> int:  # infinite, as RoundSampler
        return 2 ** 62
