"""Fidelity of generated images, measured on their features: Fréchet distance (FID), kernel distance
(KID) and improved precision/recall (metrics.py). Plain numpy and torch; no feature extractor here."""
from leakguard.fidelity.metrics import feature_statistics, frechet_distance, kid, precision_recall

__all__ = ["frechet_distance", "feature_statistics", "kid", "precision_recall"]
