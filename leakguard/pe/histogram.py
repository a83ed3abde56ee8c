"""The vote histogram of Private Evolution, one vote per person (Lin et al. 2024, DP_NN_HISTOGRAM, with a
person in place of an image as the unit):

    h = vote_histogram(private [n, D], ids [n], candidates [M, D], vote="centroid")   # [M] float64
    rows, weights = voters(private, ids, vote); h = histogram(rows, weights, candidates)  # voters once per run

    centroid  each person's normalised mean embedding votes 1 for its nearest candidate (cosine)
    images    each of a person's k images votes 1/k for its own nearest candidate

Adding or removing one person, with any number of images, changes h by a vector of non-negative entries
summing to 1, whose L2 norm is at most 1: the sensitivity the Gaussian mechanism (mechanism.py) assumes.
Nearest means the highest cosine similarity under leakguard.audit.search's exact scores, ties to the lower
candidate index, found in bounded memory (chunked as the audit's search is).
"""
import numpy as np
import torch

from leakguard.audit.search import MEMORY_BYTES, identity_centroids, topk_cosine

VOTES = ("centroid", "images")


def _unit_rows(x, name: str) -> torch.Tensor:
    """[n, D] float32 rows scaled to unit length (a fidelity extractor's features are not)."""
    t = x.float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))
    if t.ndim != 2 or len(t) == 0:
        raise ValueError(f"vote_histogram: {name} must be a non-empty [n, D] matrix, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"vote_histogram: {name} holds a value that is not finite")
    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError(f"vote_histogram: {name} has an all-zero row: it has no direction to vote by")
    return t / norms


def voters(private, ids, vote: str = "centroid", memory_bytes: int = MEMORY_BYTES) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows [V, D] unit, weights [V] float64): what votes and with what weight, fixed for a whole run. centroid:
    one row per person (the normalised mean), weight 1; images: one row per image, weight 1/k of its person."""
    if vote not in VOTES:
        raise ValueError(f"vote={vote!r}; valid: {', '.join(VOTES)}")
    p = _unit_rows(private, "the private embeddings")
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
    if ids.shape != (len(p),):
        raise ValueError(f"vote_histogram: {len(p)} private embeddings but identity ids of shape {tuple(ids.shape)}")
    if vote == "centroid":
        _, centroids = identity_centroids(p, ids, memory_bytes)                    # [people, D]
        return centroids, torch.ones(len(centroids), dtype=torch.float64)
    _, person, per_person = torch.unique(ids, return_inverse=True, return_counts=True)
    return p, 1.0 / per_person[person].double()                                    # [n]: 1/k of the image's person


def histogram(rows: torch.Tensor, weights: torch.Tensor, candidates,
              memory_bytes: int = MEMORY_BYTES) -> torch.Tensor:
    """[M] float64: each voter's weight added to its nearest candidate (the voters of `voters`)."""
    c = _unit_rows(candidates, "the candidates' embeddings")
    if rows.shape[1] != c.shape[1]:
        raise ValueError(f"vote_histogram: private embeddings have {rows.shape[1]} dimensions, candidates "
                         f"{c.shape[1]}")
    nearest = topk_cosine(rows, c, k=1, memory_bytes=memory_bytes).indices[:, 0]
    return torch.zeros(len(c), dtype=torch.float64).index_add_(0, nearest.cpu(), weights)


def vote_histogram(private, ids, candidates, vote: str = "centroid",
                   memory_bytes: int = MEMORY_BYTES) -> torch.Tensor:
    """[M] float64 votes of the private people for the M candidates (module doc); sums to the number of people."""
    return histogram(*voters(private, ids, vote, memory_bytes), candidates, memory_bytes)
