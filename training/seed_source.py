"""A generator's seeds as release-filter candidates (leakguard.filter.run.CandidateSource): what `leakguard filter
--generator` and a sweep's filtered release arm (training.sweep.release) stream through the filter.

    source = SeedSource(Path("snapshot.pt"), range(0, 2 ** 32), trunc=1.0, device=torch.device("cpu"), batch=64)
"""
from pathlib import Path
from typing import Iterator

import torch

from training.inference import generate, load_generator


class SeedSource:
    """Candidates rendered by G_ema of a generator at the seeds in order, labelled seedNNNN."""

    def __init__(self, path: Path, seeds, trunc: float, device, batch: int):
        self.G, self.seeds, self.trunc, self.device, self.render_batch = load_generator(path, "G_ema"), seeds, trunc, \
            device, batch
        if self.G.img_channels != 3:
            raise ValueError(f"{path}: the generator makes {self.G.img_channels}-channel images; matchers need RGB")
        self.limit = len(seeds)
        self.description = {"kind": "generator", "path": str(Path(path).resolve()), "seeds": _describe(seeds),
                            "truncation_psi": trunc}

    def batches(self, start: int, size: int) -> Iterator[tuple[list[str], torch.Tensor]]:
        for first in range(start, len(self.seeds), size):
            chunk = list(self.seeds[first:first + size])
            pixels = generate(self.G, chunk, self.device, trunc=self.trunc, batch=self.render_batch)  # [n, H, W, 3]
            yield [f"seed{s:04d}" for s in chunk], torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def _describe(seeds) -> str:
    return f"{seeds.start}-" if isinstance(seeds, range) else ",".join(map(str, seeds[:5])) + f"... ({len(seeds)})"
