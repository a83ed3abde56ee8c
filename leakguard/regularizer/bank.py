"""The identity bank: the training identities under one matcher, as the leakage penalty compares a fake
against them.

    bank = IdentityBank.from_embeddings(emb, ids, mode="centroid", device="cuda")   # emb [N, D] unit rows
    s = bank.best(e)                       # [n] max cosine of fakes' unit embeddings e [n, D] over the bank

Two modes: `centroid`, one row per person (the unit mean of the person's embeddings), and `images`,
every training image's embedding (a fake that copies one photo scores high even when the person's
other photos differ). The bank lives on the training device; `best` takes the max in chunks of
bank rows, so the [n, rows] score matrix is bounded however many rows there are (200k images x 512
dims is 400 MB of float32 rows, plus one chunk of scores).

The private bank (`private_centroids`): each person's centroid (the plain mean of unit embeddings,
clipped to norm 1) plus Gaussian noise N(0, sigma^2 I) once. A removed unit leaves a zero row in its
place (rows are indexed by the public unit table), so one unit moves one row by at most 1 in L2
norm: for a person removed (unit=identity) the row goes from norm <= 1 to 0; for one image removed of
a person's n (unit=image) the mean moves by at most 2/n <= 1, and by at most 1 when n = 1. The release is
the Gaussian mechanism with L2 sensitivity 1 and noise multiplier sigma, counted once in the ledger;
the rows are normalised afterwards (post-processing).
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MODES = ("centroid", "images")
CHUNK_ROWS = 65536               # bank rows scored at a time in best()


def _rows(emb) -> torch.Tensor:
    """A float32 copy of embeddings given as torch, numpy or a read-only memmap (the store's files)."""
    if isinstance(emb, torch.Tensor):
        return emb.detach().to(torch.float32, copy=True).cpu()
    return torch.from_numpy(np.array(emb, np.float32))


def centroids(emb: torch.Tensor, ids: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Plain means [P, D] of each person's rows of emb [N, D] (unit rows: norms <= 1), and the people [P]."""
    people, inverse = np.unique(np.asarray(ids), return_inverse=True)
    index = torch.as_tensor(inverse, device=emb.device)
    sums = torch.zeros([len(people), emb.shape[1]], dtype=emb.dtype, device=emb.device).index_add_(0, index, emb)
    counts = torch.bincount(index, minlength=len(people)).to(emb.dtype)
    return sums / counts[:, None], people


@dataclass
class IdentityBank:
    rows: torch.Tensor            # [R, D] unit rows, on the training device
    identities: np.ndarray        # int64 [R]: the person of each row
    mode: str                     # centroid | images
    private: bool = False         # rows released through the Gaussian mechanism

    @classmethod
    def from_embeddings(cls, emb, ids, mode: str = "centroid", device="cpu") -> "IdentityBank":
        """The bank of unit embeddings emb [N, D] (numpy or torch) of images of people ids [N]."""
        if mode not in MODES:
            raise ValueError(f"identity bank mode {mode!r}: expected one of {', '.join(MODES)}")
        emb = _rows(emb).to(device)
        ids = np.asarray(ids, np.int64)
        if emb.ndim != 2 or len(emb) != len(ids) or len(ids) == 0:
            raise ValueError(f"identity bank: expected embeddings [N, D] and N identities, got {tuple(emb.shape)} "
                             f"and {len(ids)}")
        if mode == "images":
            return cls(F.normalize(emb, dim=1), ids, mode)
        means, people = centroids(emb, ids)
        return cls(F.normalize(means, dim=1), people, mode)

    def best(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Max cosine [n] of unit rows e [n, D] over the bank, and the row it is reached at [n]; differentiable
        in e (the max's gradient flows to the best row's score)."""
        if e.ndim != 2 or e.shape[1] != self.rows.shape[1]:
            raise ValueError(f"identity bank: embeddings [n, {self.rows.shape[1]}] expected, got {tuple(e.shape)}")
        best, where = None, None
        for start in range(0, len(self.rows), CHUNK_ROWS):
            s, i = (e @ self.rows[start:start + CHUNK_ROWS].to(e.dtype).T).max(dim=1)      # [n]
            i = i + start
            if best is None:
                best, where = s, i
            else:
                better = s > best
                best, where = torch.where(better, s, best), torch.where(better, i, where)
        return best, where

    def nbytes(self) -> int:
        return self.rows.numel() * self.rows.element_size()


def private_centroids(emb, ids, unit_ids: np.ndarray, sigma: float, generator: torch.Generator,
                      device="cpu") -> IdentityBank:
    """The private bank (module doc): one row per entry of unit_ids (the public list of people), each the
    person's mean embedding clipped to norm 1 plus N(0, sigma^2 I), then normalised."""
    if not (sigma > 0 and np.isfinite(sigma)):
        raise ValueError(f"private identity bank: noise multiplier sigma={sigma!r} must be a positive number")
    emb = _rows(emb)
    means, people = centroids(emb, ids)
    rows = torch.zeros([len(unit_ids), emb.shape[1]])
    where = {int(p): i for i, p in enumerate(people)}
    for r, person in enumerate(np.asarray(unit_ids, np.int64)):
        if int(person) in where:
            rows[r] = means[where[int(person)]]
    rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1.0)                  # clip to L2 norm 1
    noise = torch.randn(rows.shape, generator=generator, device=generator.device).to(rows.device)
    noisy = rows + sigma * noise                                                 # sensitivity 1: std sigma
    return IdentityBank(F.normalize(noisy, dim=1).to(device), np.asarray(unit_ids, np.int64), "centroid", private=True)
