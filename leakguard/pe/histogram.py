"""The vote histogram of Private Evolution, one vote per person (Lin et al. 2024, DP_NN_HISTOGRAM, with a
person in place of an image as the unit):

    h = vote_histogram(private [n, D], ids [n], candidates [M, D], vote="centroid")   # [M] float64

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


def vote_histogram(private, ids, candidates, vote: str = "centroid",
                   memory_bytes: int = MEMORY_BYTES) -> torch.Tensor:
    """[M] float64 votes of the private people for the M candidates (module doc); sums to the number of people."""
    if vote not in VOTES:
        raise ValueError(f"vote={vote!r}; valid: {', '.join(VOTES)}")
    p, c = _unit_rows(private, "the private embeddings"), _unit_rows(candidates, "the candidates' embeddings")
    if p.shape[1] != c.shape[1]:
        raise ValueError(f"vote_histogram: private embeddings have {p.shape[1]} dimensions, candidates {c.shape[1]}")
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
    if ids.shape != (len(p),):
        raise ValueError(f"vote_histogram: {len(p)} private embeddings but identity ids of shape {tuple(ids.shape)}")
    hist = torch.zeros(len(c), dtype=torch.float64)
    if vote == "centroid":
        _, centroids = identity_centroids(p, ids, memory_bytes)                    # [people, D]
        nearest = topk_cosine(centroids, c, k=1, memory_bytes=memory_bytes).indices[:, 0]
        return hist.index_add_(0, nearest.cpu(), torch.ones(len(nearest), dtype=torch.float64))
    _, person, per_person = torch.unique(ids, return_inverse=True, return_counts=True)
    weight = 1.0 / per_person[person].double()                                      # [n]: 1/k of the image's person
    nearest = topk_cosine(p, c, k=1, memory_bytes=memory_bytes).indices[:, 0]
    return hist.index_add_(0, nearest.cpu(), weight)
