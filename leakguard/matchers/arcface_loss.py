"""Additive angular margin loss for training face matchers."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class ArcFaceLoss(nn.Module):
    """ArcFace (Deng et al. 2019): cross-entropy over logits s cos(theta_y + m) for the true class y and
    s cos(theta_j) for the others, theta_j the angle between the embedding and class centre W_j.

    cos(theta + m) is not monotonic once theta + m > pi. As in InsightFace, past theta > pi - m the
    margin logit becomes cos(theta) - m sin(m) (still decreasing in theta), or with easy_margin the
    margin applies only where cos(theta) > 0. Returns unreduced per-sample losses [N]; the caller
    reduces (and may clip per sample).
    """

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5,
                 easy_margin: bool = False):
        super().__init__()
        if num_classes < 2 or embedding_dim < 1:
            raise ValueError(f"ArcFaceLoss: need num_classes >= 2 and embedding_dim >= 1, "
                             f"got {num_classes} and {embedding_dim}")
        if not 0 <= m < math.pi / 2 or s <= 0:
            raise ValueError(f"ArcFaceLoss: s={s} must be > 0 and m={m} in [0, pi/2) radians")
        self.s, self.m, self.easy_margin = float(s), float(m), bool(easy_margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))  # [C, D] class centres
        nn.init.xavier_uniform_(self.weight)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[N, D] embeddings (any norm), [N] class indices -> [N, C] scaled logits with the margin."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.weight.shape[1]:
            raise ValueError(f"ArcFaceLoss: expected embeddings [N, {self.weight.shape[1]}], "
                             f"got {tuple(embeddings.shape)}")
        if labels.shape != embeddings.shape[:1]:
            raise ValueError(f"ArcFaceLoss: expected labels [{len(embeddings)}], got {tuple(labels.shape)}")
        cos = F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))  # [N, C]
        # Clamped away from +-1 so that sin's gradient stays finite.
        cos_y = cos.gather(1, labels[:, None]).clamp(-1 + 1e-7, 1 - 1e-7)  # [N, 1]
        sin_y = (1 - cos_y ** 2).sqrt()
        m = self.m
        phi = cos_y * math.cos(m) - sin_y * math.sin(m)  # cos(theta_y + m)
        if self.easy_margin:
            phi = torch.where(cos_y > 0, phi, cos_y)
        else:
            phi = torch.where(cos_y > math.cos(math.pi - m), phi, cos_y - math.sin(math.pi - m) * m)
        return self.s * cos.scatter(1, labels[:, None], phi)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[N, D], [N] -> [N] per-sample losses."""
        return F.cross_entropy(self.logits(embeddings, labels), labels, reduction="none")
