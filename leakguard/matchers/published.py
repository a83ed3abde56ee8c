"""Matchers' published operating points: the threshold a matcher's own authors state for "same
person", applied the way they state it, so an audit can show it beside the data-derived thresholds.

    point = published_point("dlib")                  # PublishedPoint(rule='distance', value=0.6, ...)
    raw = RawFeatures(matcher)                       # the un-normalised features the rule is stated on
    best_d = nearest_distances(gen_raw, train_raw)   # [G] smallest Euclidean distance to any training image
    leaks = best_d <= point.value

Only points whose source states them are listed. dlib's rule is on raw descriptors (norms near 1.5,
not 1), so it is applied to Euclidean distances of raw features, never converted to a cosine.
"""
from dataclasses import dataclass

import torch

from leakguard.matchers.base import Matcher, to_unit_range
from leakguard.matchers.dlib_matcher import DlibMatcher


@dataclass(frozen=True)
class PublishedPoint:
    matcher: str      # registry name
    rule: str         # 'distance': same person when the Euclidean distance of raw features <= value
    value: float
    source: str       # who states it, where


PUBLISHED: dict[str, PublishedPoint] = {
    "dlib": PublishedPoint(
        "dlib", "distance", DlibMatcher.TOLERANCE,
        "dlib's dnn_face_recognition_ex.cpp for dlib_face_recognition_resnet_model_v1 (King 2017): descriptors "
        "less than 0.6 apart are the same person; face_recognition's default tolerance is the same 0.6"),
}


def published_point(name: str) -> PublishedPoint:
    if name not in PUBLISHED:
        raise ValueError(f"--threshold {name}=published: the matcher {name!r} has no published operating point "
                         f"LeakGuard knows of; matchers that have one: {', '.join(PUBLISHED)}")
    return PUBLISHED[name]


class RawFeatures:
    """A matcher's features before L2 normalisation, with the attributes the embedding store reads
    (its own version, so raw and unit embeddings are cached apart)."""

    def __init__(self, matcher: Matcher):
        self.matcher = matcher
        self.name, self.batch_size, self.embedding_dim = matcher.name, matcher.batch_size, matcher.embedding_dim

    @property
    def version(self) -> str:
        return f"{self.matcher.version}:raw"

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] -> float32 [n, D] raw features on the CPU."""
        batch = to_unit_range(images.to(self.matcher.device))
        return self.matcher.embed_batch(batch).float().cpu()


def nearest_distances(queries: torch.Tensor, bank: torch.Tensor, max_elements: int = 1 << 24) -> torch.Tensor:
    """[M] smallest Euclidean distance from each of queries [M, D] to bank [N, D], float64, computed
    a block of query rows at a time so at most `max_elements` distances exist at once."""
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1] or len(bank) == 0:
        raise ValueError(f"nearest_distances: expected queries [M, D] and a non-empty bank [N, D], got "
                         f"{tuple(queries.shape)} and {tuple(bank.shape)}")
    q, b = queries.double(), bank.double()
    rows = max(1, max_elements // len(b))
    return torch.cat([torch.cdist(q[i:i + rows], b).min(dim=1).values for i in range(0, len(q), rows)]) \
        if len(q) else torch.zeros([0], dtype=torch.float64)
