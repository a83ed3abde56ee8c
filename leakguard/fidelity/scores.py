"""Every fidelity number of one extractor's features for a real and a generated set, named by the
extractor (fid / fd_<matcher>, kid, precision, recall), with what they were computed on.

    store = EmbeddingStore(root)     # the real set's features are computed once per (content, extractor version)
    masks = {}
    scores = fidelity_scores(store.embeddings(real, ex), ex.embed(fake), ex, in_manifold=masks)
    masks[ex.metric_prefix]          # [N_f] bool: the fakes inside the real k-NN manifold; its mean is the precision

k, the neighbours of precision/recall, is capped below both set sizes (`neighbours`): with few images
the balls reach the farthest other point rather than failing.
"""
import numpy as np

from leakguard.fidelity.metrics import feature_statistics, frechet_distance, kid, manifold_masks, mask_share

K = 3  # neighbours of precision/recall's balls (Kynkäänniemi et al.'s default)


def neighbours(k: int, real_count: int, fake_count: int) -> int:
    """k as the scores use it: at most one below each set's size (each ball excludes its centre)."""
    return min(k, real_count - 1, fake_count - 1)


def fidelity_scores(real: np.ndarray, fake: np.ndarray, extractor, kid_subsets: int = 100,
                    kid_subset_size: int = 1000, k: int = K, seed: int = 0,
                    in_manifold: dict | None = None) -> dict:
    """{"<prefix>": FD, "<prefix>_kid": mean, "<prefix>_kid_std", "<prefix>_precision", "<prefix>_recall",
    and the extractor's name, version and the counts} for real and fake features [N, D]. Each fake's
    in-manifold flag ([N_f] bool, the precision's own) goes to in_manifold[prefix] when a dict is given."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    p = extractor.metric_prefix
    mu_r, sigma_r = feature_statistics(real)
    mu_f, sigma_f = feature_statistics(fake)
    kid_mean, kid_std = kid(real, fake, kid_subsets, kid_subset_size, seed)
    k = neighbours(k, len(real), len(fake))
    fake_in, real_in = manifold_masks(real, fake, k=k, where="precision_recall")
    if in_manifold is not None:
        in_manifold[p] = fake_in
    return {p: frechet_distance(mu_r, sigma_r, mu_f, sigma_f), f"{p}_kid": kid_mean, f"{p}_kid_std": kid_std,
            f"{p}_precision": mask_share(fake_in), f"{p}_recall": mask_share(real_in),
            "extractor": extractor.name, "extractor_version": extractor.version,
            "real_count": len(real), "fake_count": len(fake), "kid_subset_size": min(kid_subset_size, len(real),
                                                                                     len(fake)),
            "kid_subsets": kid_subsets, "k": k}
