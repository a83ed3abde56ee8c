"""From the data config to a dataset and a stream of per-round chunks on the training device."""
import numpy as np
import torch

from training.config import DataConfig
from training.data import Chunk
from training.data.dataset import ImageDataset
from training.data.sampler import RoundSampler, chunk_ids
from training.stop import ignore_in_worker
from training.synthfaces import SynthFaces


def open_dataset(cfg: DataConfig, render: bool = True):
    """An ImageDataset for data.path, or SynthFaces (rendered into memory unless `render` is False: its
    identities and size are known without drawing a face) when data.path is null."""
    if cfg.path is not None:
        return ImageDataset(cfg.path, resolution=cfg.resolution, use_labels=cfg.use_labels, xflip=cfg.xflip,
                            skip_bad=cfg.skip_bad, max_size=cfg.max_size)
    if cfg.xflip or cfg.use_labels:
        raise ValueError("data.xflip and data.use_labels apply to image datasets (data.path); SynthFaces has "
                         "neither — export it with `leakguard synthfaces` to use them")
    s = cfg.synthfaces
    faces = SynthFaces(resolution=cfg.resolution, num_identities=s.num_identities,
                       images_per_identity=s.images_per_identity, identity_offset=s.identity_offset,
                       overrep_identity=s.overrep_identity, overrep_images=s.overrep_images, seed=s.seed,
                       population=s.population)
    if render:
        faces.render_all()
    return faces


def describe(dataset) -> dict:
    """What a snapshot records about its data, to refuse resuming on different data."""
    return {"name": dataset.name, "size": len(dataset), "resolution": dataset.resolution,
            "channels": dataset.num_channels, "label_dim": dataset.label_dim}


def _collate(items):
    # np.stack copies: the datasets may hand out read-only arrays, which torch warns about sharing.
    imgs = torch.from_numpy(np.stack([np.asarray(img) for img, _ in items]))        # [n, C, H, W] uint8
    labels = torch.from_numpy(np.stack([np.asarray(label) for _, label in items]))  # [n, c_dim]
    return imgs, labels


class ChunkStream:
    """Yields, per round, this rank's chunks as float images in [-1, 1] on `device`."""

    def __init__(self, dataset, batch: int, batch_gpu: int, rank: int, world: int, seed: int, start_round: int,
                 device: torch.device, workers: int):
        sampler = RoundSampler(len(dataset), batch, batch_gpu, rank, world, seed, start_round)
        self.indices = chunk_ids(rank, world, batch // (batch_gpu * world))
        self.batch_gpu = batch_gpu
        self.device = device
        self.loader = iter(torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=workers, collate_fn=_collate,
            pin_memory=device.type == "cuda", persistent_workers=workers > 0, worker_init_fn=ignore_in_worker,
            prefetch_factor=2 if workers > 0 else None))

    def __next__(self) -> list[Chunk]:
        imgs, labels = next(self.loader)
        imgs = imgs.to(self.device, non_blocking=True).to(torch.float32) / 127.5 - 1
        labels = labels.to(self.device, non_blocking=True).to(torch.float32)
        return [Chunk(img=i, c=c, index=k) for i, c, k in
                zip(imgs.split(self.batch_gpu), labels.split(self.batch_gpu), self.indices)]

    def __iter__(self):
        return self
