"""A training config small enough to run a few rounds per second on a 2-core CPU, and a toy dataset."""
import numpy as np

from training.config import load_config

TINY = [
    "data.resolution=32", "data.workers=0",
    "data.synthfaces.num_identities=6", "data.synthfaces.images_per_identity=4",
    "model.z_dim=16", "model.w_dim=16", "model.map_layers=1", "model.channel_base=128", "model.channel_max=16",
    "model.mbstd_group=2",
    "loss.r1_gamma=1.0", "loss.r1_interval=2", "loss.pl_interval=2",
    "augment.mode=noaug",
    "train.batch=4", "train.ema_kimg=0.01", "train.ema_rampup=0.5",
    "train.tick_kimg=0.008", "train.snapshot_kimg=1000", "train.image_kimg=1000", "train.grid_images=4",
    "train.device=cpu", "train.progress=false",
]


def tiny_config(tmp_path, *overrides):
    return load_config(None, TINY + [f"run_dir={tmp_path / 'runs'}", "name=tiny", *overrides])


class ToyDataset:
    """Random uint8 images with the attributes the training loop reads (no files, no SynthFaces)."""
    name = "toy"
    num_channels = 3

    def __init__(self, n: int = 16, resolution: int = 8, label_dim: int = 0, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, [n, 3, resolution, resolution], dtype=np.uint8)
        self.labels = np.eye(max(label_dim, 1), dtype=np.float32)[rng.integers(0, max(label_dim, 1), n)][:, :label_dim]
        self.resolution = resolution
        self.label_dim = label_dim
        self.image_shape = [3, resolution, resolution]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def get_label(self, i):
        return self.labels[i]
