"""Fidelity metrics from features of real and generated images (e.g. Inception pool3, [N, 2048]).
Inputs are numpy arrays or torch tensors; the arithmetic is float64 throughout.

FD      Heusel et al. 2017: |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)).
        The FID when the features are Inception's and (mu, sigma) come from `feature_statistics`.
KID     Bińkowski et al. 2018: the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, its mean and standard
        deviation (population, as torchmetrics) over random subsets of both sets.
P/R     Kynkäänniemi et al. 2019: each feature's ball reaches its k-th nearest neighbour in its own set
        (itself excluded); precision = fraction of fakes inside some real ball, recall = fraction of
        reals inside some fake ball. `in_real_manifold` gives the per-fake booleans whose mean is the
        precision (the fakes that look like some real image: the audit's "faces" among the fakes);
        `manifold_masks` gives both masks, and precision_recall is their means, so the mask and the
        precision come from one computation and cannot disagree.
"""
import numpy as np
import torch

Features = np.ndarray | torch.Tensor

# A covariance's eigenvalues down to -PSD_TOL * its largest are rounding (a float32 covariance of
# 2048-d features carries ~1e-6 relative error) and are set to 0; anything more negative is refused.
PSD_TOL = 1e-5
SYM_TOL = 1e-5             # max |sigma - sigma^T| allowed, relative to max |sigma|
BATCH = 1024               # rows per distance chunk: [BATCH, N] float64 is 400 MB at N = 50k


def _float64(x, name: str, where: str) -> np.ndarray:
    """x as a finite float64 numpy array, or an error naming what is wrong."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.to(torch.float64) if x.is_floating_point() else x
        x = x.numpy()
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{where}: expected numeric {name}, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        first = np.unravel_index(int(np.flatnonzero(~np.isfinite(a))[0]), a.shape)
        raise ValueError(f"{where}: {name} holds NaN or inf (first at index {tuple(int(i) for i in first)})")
    return a


def _rows(x, name: str, where: str, least: int = 2) -> np.ndarray:
    """x as float64 features [N, D] with N >= least rows and D >= 1."""
    a = _float64(x, name, where)
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"{where}: expected {name} of shape [N, D], got shape {a.shape}")
    if a.shape[0] < least:
        raise ValueError(f"{where}: {name} has {a.shape[0]} row(s); at least {least} are needed")
    return a


def _same_dim(a: np.ndarray, b: np.ndarray, names: str, where: str):
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{where}: {names} have different feature dimensions, {a.shape[1]} and {b.shape[1]}")


def _count(x, name: str, low: int, where: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < low:
        raise ValueError(f"{where}: {name}={x!r} must be an integer >= {low}")
    return int(x)


# --- Fréchet distance ------------------------------------------------------------------------------

def feature_statistics(features: Features) -> tuple[np.ndarray, np.ndarray]:
    """(mu [D], sigma [D, D]) of features [N, D] in float64; sigma is the unbiased covariance (N - 1)."""
    f = _rows(features, "features", "feature_statistics")
    mu = f.mean(axis=0)
    c = f - mu                                                    # [N, D]
    return mu, c.T @ c / (len(f) - 1)


def _covariance(sigma, name: str, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues >= 0, eigenvectors) of a symmetric PSD sigma [d, d], or an error saying why not."""
    s = _float64(sigma, name, "frechet_distance")
    if s.shape != (d, d):
        raise ValueError(f"frechet_distance: {name} has shape {s.shape}; the means have D={d}, so ({d}, {d}) is needed")
    scale = np.abs(s).max()
    if np.abs(s - s.T).max() > SYM_TOL * scale:
        raise ValueError(f"frechet_distance: {name} is not symmetric (max |{name} - {name}^T| = "
                         f"{np.abs(s - s.T).max():.3g} against max |{name}| = {scale:.3g}); pass a covariance")
    try:
        w, v = np.linalg.eigh((s + s.T) / 2)
    except np.linalg.LinAlgError as e:
        raise ValueError(f"frechet_distance: the eigendecomposition of {name} failed ({e})") from e
    if w[0] < -PSD_TOL * max(np.abs(w).max(), np.finfo(np.float64).tiny):
        raise ValueError(f"frechet_distance: {name} is not positive semi-definite (smallest eigenvalue {w[0]:.3g}, "
                         f"largest {w[-1]:.3g}); no covariance has it, so it cannot be repaired by an offset")
    return np.clip(w, 0.0, None), v


def frechet_distance(mu1: Features, sigma1: Features, mu2: Features, sigma2: Features) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (the FID on Inception features)."""
    mu1, mu2 = _float64(mu1, "mu1", "frechet_distance"), _float64(mu2, "mu2", "frechet_distance")
    if mu1.ndim != 1 or mu1.shape != mu2.shape or len(mu1) == 0:
        raise ValueError(f"frechet_distance: mu1 and mu2 must be non-empty vectors of one length, "
                         f"got shapes {mu1.shape} and {mu2.shape}")
    d = len(mu1)
    w1, v1 = _covariance(sigma1, "sigma1", d)
    w2, v2 = _covariance(sigma2, "sigma2", d)
    # tr (sigma1 sigma2)^(1/2) through the symmetric form: with r = sigma1^(1/2), r sigma2 r has the same
    # eigenvalues as sigma1 sigma2 (AB and BA share them) and is symmetric PSD, so eigvalsh gives them real
    # and accurate, also when sigma1 or sigma2 is singular (fewer samples than dimensions). The general
    # sqrtm of the non-symmetric product (StyleGAN2-ADA, pytorch-fid) can return complex parts or fail there
    # and needs an eps*I offset retry, which shifts the result; this needs none.
    r = (v1 * np.sqrt(w1)) @ v1.T                                 # sigma1^(1/2) [D, D]
    s2 = (v2 * w2) @ v2.T                                         # sigma2 with rounding negatives removed
    m = r @ s2 @ r
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    trace_sqrt = np.sqrt(np.clip(lam, 0.0, None)).sum()
    with np.errstate(over="ignore", invalid="ignore"):          # an overflow is refused just below
        fd = float(np.square(mu1 - mu2).sum() + w1.sum() + w2.sum() - 2.0 * trace_sqrt)
    if not np.isfinite(fd):
        raise ValueError(f"frechet_distance: the result is not finite ({fd}); the inputs overflow float64 "
                         f"(max |mu| = {max(np.abs(mu1).max(), np.abs(mu2).max()):.3g}), rescale the features")
    return fd


# --- kernel distance -------------------------------------------------------------------------------

def _mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of x [m, D] and y [m, D] with k(x, y) = (x.y / D + 1)^3."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3                               # [m, m]
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def poly_mmd2(x: Features, y: Features) -> float:
    """KID of one subset pair: the unbiased MMD^2 of x [m, D] and y [m, D] (one m for both)."""
    x, y = _rows(x, "x", "poly_mmd2"), _rows(y, "y", "poly_mmd2")
    _same_dim(x, y, "x and y", "poly_mmd2")
    if len(x) != len(y):
        raise ValueError(f"poly_mmd2: x has {len(x)} rows and y {len(y)}; the estimate needs equal subset sizes")
    return _mmd2(x, y)


def kid(features_a: Features, features_b: Features, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of `poly_mmd2` over `num_subsets` subset pairs of m = min(subset_size, N_a, N_b) rows.

    From numpy.random.default_rng(seed), subset s takes rows rng.choice(N_a, m, replace=False) of a, then
    rng.choice(N_b, m, replace=False) of b. std is the population one (ddof=0), as torchmetrics reports.
    """
    a, b = _rows(features_a, "features_a", "kid"), _rows(features_b, "features_b", "kid")
    _same_dim(a, b, "features_a and features_b", "kid")
    num_subsets = _count(num_subsets, "num_subsets", 1, "kid")
    m = min(_count(subset_size, "subset_size", 2, "kid"), len(a), len(b))
    rng = np.random.default_rng(seed)
    scores = np.empty(num_subsets)
    for s in range(num_subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = rng.choice(len(b), m, replace=False)
        scores[s] = _mmd2(a[ia], b[ib])
    return float(scores.mean()), float(scores.std())


# --- precision and recall --------------------------------------------------------------------------

def _sq_dists(x: torch.Tensor, x2: torch.Tensor, y: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
    """|x_i - y_j|^2 [B, N] from rows and their squared norms. In float64 the expansion's cancellation
    costs ~1e-16 (|x|^2 + |y|^2) absolute, far below feature distances; clamped since it can dip below 0."""
    return (x2[:, None] + y2[None, :] - 2.0 * (x @ y.T)).clamp_min_(0.0)


def _knn_radii2(x: torch.Tensor, x2: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Squared distance of each row of x [N, D] to its k-th nearest other row, [N]."""
    radii = torch.empty(len(x), dtype=x.dtype, device=x.device)
    for s in range(0, len(x), batch):
        e = min(s + batch, len(x))
        d = _sq_dists(x[s:e], x2[s:e], x, x2)                     # [B, N]
        # Exclude itself by index, not by taking the (k+1)-th value: a row's distance to itself computed by the
        # expansion need not be exactly 0, while a duplicate row's is rightly a neighbour at 0.
        rows = torch.arange(e - s, device=x.device)
        d[rows, rows + s] = float("inf")
        radii[s:e] = d.kthvalue(k, dim=1).values
    return radii


def _coverage(r: torch.Tensor, f: torch.Tensor, radii_r: torch.Tensor, radii_f: torch.Tensor | None,
              batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(fakes inside some real ball [N_f], reals inside some fake ball [N_r] or None without radii_f), booleans."""
    r2, f2 = (r * r).sum(1), (f * f).sum(1)
    fake_in = torch.zeros(len(f), dtype=torch.bool, device=f.device)
    real_in = None if radii_f is None else torch.zeros(len(r), dtype=torch.bool, device=r.device)
    for s in range(0, len(r), batch):
        e = min(s + batch, len(r))
        d = _sq_dists(r[s:e], r2[s:e], f, f2)                     # [B, N_f]
        fake_in |= (d <= radii_r[s:e, None]).any(dim=0)
        if real_in is not None:
            real_in[s:e] = (d <= radii_f[None, :]).any(dim=1)
    return fake_in, real_in


def manifold_masks(real: Features, fake: Features, k: int = 3, batch: int = BATCH,
                   device: str | torch.device | None = None, recall: bool = True,
                   where: str = "manifold_masks") -> tuple[np.ndarray, np.ndarray | None]:
    """(in_real [N_f] bool: each fake inside some real k-NN ball, in_fake [N_r] bool: each real inside some
    fake k-NN ball, or None when not `recall`) for fake [N_f, D] against real [N_r, D] (Kynkäänniemi et al.).

    Distances are computed `batch` rows at a time (memory batch x max(N_r, N_f) float64), on `device`
    (default: real's device when it is a tensor, else the CPU). Without `recall` the fakes' own balls are not
    needed: k must only be below N_r, and one fake row is enough.
    """
    if device is None:
        device = real.device if isinstance(real, torch.Tensor) else "cpu"
    r = _rows(real, "real", where)
    f = _rows(fake, "fake", where, least=2 if recall else 1)
    _same_dim(r, f, "real and fake", where)
    k = _count(k, "k", 1, where)
    batch = _count(batch, "batch", 1, where)
    fewest = min(len(r), len(f)) if recall else len(r)
    if k >= fewest:
        sizes = f"{len(r)} real and {len(f)} fake" if recall else f"{len(r)} real"
        raise ValueError(f"{where}: k={k} needs more than k rows in each set whose balls are drawn (each ball "
                         f"excludes its centre), got {sizes}; pass k <= {fewest - 1}")
    r = torch.from_numpy(r).to(device)
    f = torch.from_numpy(f).to(device)
    radii_r = _knn_radii2(r, (r * r).sum(1), k, batch)
    radii_f = _knn_radii2(f, (f * f).sum(1), k, batch) if recall else None
    fake_in, real_in = _coverage(r, f, radii_r, radii_f, batch)
    return fake_in.cpu().numpy(), None if real_in is None else real_in.cpu().numpy()


def in_real_manifold(real: Features, fake: Features, k: int = 3, batch: int = BATCH,
                     device: str | torch.device | None = None) -> np.ndarray:
    """[N_f] bool: whether each fake lies inside the real set's k-NN manifold (the ball of some real row that
    reaches its k-th nearest other real row); its mean is precision_recall's precision, bit for bit."""
    return manifold_masks(real, fake, k, batch, device, recall=False, where="in_real_manifold")[0]


def precision_recall(real: Features, fake: Features, k: int = 3, batch: int = BATCH,
                     device: str | torch.device | None = None) -> tuple[float, float]:
    """(precision, recall) of fake [N_f, D] against real [N_r, D] with k-NN balls (Kynkäänniemi et al.):
    the means of manifold_masks' two masks (memory and device as there)."""
    fake_in, real_in = manifold_masks(real, fake, k, batch, device, where="precision_recall")
    return mask_share(fake_in), mask_share(real_in)


def mask_share(mask: np.ndarray) -> float:
    """The fraction of True in a boolean mask [N] (N >= 1), exactly #True / N."""
    return float(np.count_nonzero(mask) / len(mask))
