"""Every fidelity number of one extractor's features for a real and a generated set, named by the
extractor (fid / fd_<matcher>, kid, precision, recall), with what they were computed on.

    store = EmbeddingStore(root)     # the real set's features are computed once per (content, extractor version)
    scores = fidelity_scores(store.embeddings(real, ex), ex.embed(fake), ex)
"""
import numpy as np

from leakguard.fidelity.metrics import feature_statistics, frechet_distance, kid, precision_recall


def fidelity_scores(real: np.ndarray, fake: np.ndarray, extractor, kid_subsets: int = 100,
                    kid_subset_size: int = 1000, k: int = 3, seed: int = 0) -> dict:
    """{"<prefix>": FD, "<prefix>_kid": mean, "<prefix>_kid_std", "<prefix>_precision", "<prefix>_recall",
    and the extractor's name, version and the counts} for real and fake features [N, D]."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    p = extractor.metric_prefix
    mu_r, sigma_r = feature_statistics(real)
    mu_f, sigma_f = feature_statistics(fake)
    kid_mean, kid_std = kid(real, fake, kid_subsets, kid_subset_size, seed)
    k = min(k, len(real) - 1, len(fake) - 1)
    precision, recall = precision_recall(real, fake, k=k)
    return {p: frechet_distance(mu_r, sigma_r, mu_f, sigma_f), f"{p}_kid": kid_mean, f"{p}_kid_std": kid_std,
            f"{p}_precision": precision, f"{p}_recall": recall,
            "extractor": extractor.name, "extractor_version": extractor.version,
            "real_count": len(real), "fake_count": len(fake), "kid_subset_size": min(kid_subset_size, len(real),
                                                                                     len(fake)),
            "kid_subsets": kid_subsets, "k": k}
