"""Fidelity of generated images, measured on their features: Fréchet distance (FID), kernel distance
(KID), improved precision/recall and the per-fake mask behind precision (metrics.py). Plain numpy and
torch; no feature extractor here."""
from leakguard.fidelity.metrics import (feature_statistics, frechet_distance, in_real_manifold, kid, manifold_masks,
                                        precision_recall)

__all__ = ["frechet_distance", "feature_statistics", "in_real_manifold", "kid", "manifold_masks", "precision_recall"]
