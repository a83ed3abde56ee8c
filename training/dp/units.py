"""Privacy units and their Poisson sampling.

A unit is what the guarantee protects: one image (privacy.unit=image) or one person with all of their
images (privacy.unit=identity). Every private D step t includes each unit independently with
probability q (Poisson sampling, which the accountant's amplification assumes), and of a sampled
person at most k images, chosen without replacement. Both draws are pure functions of (secret key, t),
so resuming, or splitting a step over processes, sees the same units; the key must stay secret,
since an adversary who knows which units each step used loses nothing to the sampling.
"""
import numpy as np

from training.dp.keys import PICK, SAMPLE


class UnitTable:
    """The dataset's images grouped by unit, as CSR: images of unit u are order[starts[u]:starts[u + 1]]."""

    def __init__(self, dataset, unit: str, source: str = "the dataset"):
        n = len(dataset)
        if unit == "image":
            self.order = np.arange(n, dtype=np.int64)
            self.starts = np.arange(n + 1, dtype=np.int64)
            return
        if unit != "identity":
            raise ValueError(f"privacy.unit={unit!r} has no units; expected image or identity")
        ids = getattr(dataset, "identities", None)
        if ids is None:
            raise ValueError(f"privacy.unit='identity' needs the person in each image, but {source} has no "
                             '"identities" table in its dataset.json; rebuild it with `leakguard dataset --layout '
                             "identity-folders` (one folder per person) or `--layout celeba`, or set "
                             "privacy.unit=image")
        ids = np.asarray(ids)
        self.order = np.argsort(ids, kind="stable").astype(np.int64)
        sorted_ids = ids[self.order]
        boundaries = np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1
        self.starts = np.concatenate([[0], boundaries, [n]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def images(self, u: int) -> np.ndarray:
        return self.order[self.starts[u]:self.starts[u + 1]]

    def max_images(self) -> int:
        return int(np.diff(self.starts).max()) if len(self) else 0


class PoissonSampler:
    """The units of private D step t, each with at most k of its images."""

    def __init__(self, table: UnitTable, q: float, k: int, key: int):
        if not 0 < q <= 1:
            raise ValueError(f"sampling rate q={q} must be in (0, 1]")
        self.table, self.q, self.k, self.key = table, float(q), int(k), int(key)

    def units(self, t: int) -> np.ndarray:
        """Sampled unit ids of step t, ascending: each unit in with probability q, independently."""
        rng = np.random.default_rng([self.key, SAMPLE, t])
        return np.flatnonzero(rng.random(len(self.table)) < self.q)

    def images(self, u: int, t: int) -> np.ndarray:
        """At most k images of unit u for step t (all of them when it has no more than k)."""
        imgs = self.table.images(u)
        if len(imgs) <= self.k:
            return imgs
        rng = np.random.default_rng([self.key, PICK, t, u])
        return np.sort(rng.choice(imgs, size=self.k, replace=False))

    def plan(self, t: int, units_per_chunk: int, rank: int, world: int) -> list[tuple[int, list[np.ndarray]]]:
        """This rank's chunks of step t: (chunk index, the image indices of each unit in the chunk).
        Chunk i of the step's sampled units goes to rank i % world, as rounds split their chunks."""
        sampled = self.units(t)
        chunks = [sampled[i:i + units_per_chunk] for i in range(0, len(sampled), units_per_chunk)]
        return [(i, [self.images(int(u), t) for u in chunk]) for i, chunk in enumerate(chunks) if i % world == rank]
