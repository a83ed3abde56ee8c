"""Fidelity metrics against independent computations on the same seeded features: FD against scipy's
sqrtm formula and torchmetrics (its FD of (mu, sigma) and its FrechetInceptionDistance fed the features),
KID against torchmetrics' MMD and a pair-by-pair sum on the same subsets, precision/recall against an
O(n^2) loop over every pair."""
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from leakguard.fidelity import feature_statistics, frechet_distance, kid, precision_recall
from leakguard.fidelity.metrics import poly_mmd2


def features(n: int, d: int, seed: int, shift: float = 0.0, mix: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    if mix:                                       # correlated dimensions, unequal variances
        x = x @ rng.normal(size=(d, d)) * 0.3
    return x + shift


class Identity(torch.nn.Module):
    """A "feature extractor" for torchmetrics that returns its input: the features are the images."""

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# --- the oracles -----------------------------------------------------------------------------------

def scipy_fd(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula with scipy's general matrix square root of the product."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real)


def pairwise_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 summed one pair at a time."""
    m, d = x.shape
    k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)


def brute_radii(x: np.ndarray, k: int) -> list[float]:
    """Distance of each row to its k-th nearest other row (itself excluded by index)."""
    return [sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if j != i)[k - 1] for i in range(len(x))]


def brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    rr, rf = brute_radii(real, k), brute_radii(fake, k)
    inside = lambda p, centres, radii: any(np.linalg.norm(p - c) <= r for c, r in zip(centres, radii))  # noqa: E731
    precision = sum(inside(f, real, rr) for f in fake) / len(fake)
    recall = sum(inside(r, fake, rf) for r in real) / len(real)
    return precision, recall


# --- Fréchet distance ------------------------------------------------------------------------------

def test_feature_statistics_are_mean_and_unbiased_covariance():
    x = features(50, 6, 0, mix=True)
    mu, sigma = feature_statistics(torch.from_numpy(x).float())
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n, d", [(300, 16), (200, 32), (33, 32), (20, 32), (10, 48)])
def test_fd_matches_scipy_sqrtm_and_torchmetrics(n, d):
    # n <= d: fewer samples than dimensions, so both covariances are singular (rank n - 1).
    mu1, s1 = feature_statistics(features(n, d, 1))
    mu2, s2 = feature_statistics(features(n, d, 2, shift=0.1, mix=True))
    fd = frechet_distance(mu1, s1, mu2, s2)
    assert fd == pytest.approx(scipy_fd(mu1, s1, mu2, s2), rel=1e-6)
    tm = _compute_fid(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2))).item()
    assert fd == pytest.approx(tm, rel=1e-6)


def test_fd_matches_torchmetrics_fid_fed_the_features():
    a, b = features(120, 24, 3), features(150, 24, 4, shift=0.2, mix=True)
    metric = FrechetInceptionDistance(feature=Identity(24))
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    ours = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert ours == pytest.approx(metric.compute().item(), rel=1e-6)


def test_fd_of_a_distribution_with_itself_is_zero_and_accepts_tensors():
    mu, sigma = feature_statistics(features(40, 8, 5, mix=True))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9 * np.trace(sigma))
    t = [torch.from_numpy(v) for v in (mu, sigma)]
    assert frechet_distance(t[0], t[1], mu + 1.0, sigma) == pytest.approx(len(mu), rel=1e-9)   # |1|^2 per dim


def test_fd_of_known_gaussians():
    # N(0, I) vs N(m, 4 I) in d dims: |m|^2 + d + 4d - 2 * 2d = |m|^2 + d; a zero covariance needs no repair.
    d = 5
    assert frechet_distance(np.zeros(d), np.eye(d), np.full(d, 2.0), 4 * np.eye(d)) == pytest.approx(4 * d + d)
    assert frechet_distance(np.zeros(d), np.zeros((d, d)), np.zeros(d), 9 * np.eye(d)) == pytest.approx(9 * d)


def test_fd_refuses_a_covariance_beyond_repair():
    # An eigenvalue of -1 against +1: not a covariance of anything, and no offset eps*I of rounding size
    # makes it one; scipy's formula would return a complex or meaningless number here.
    d = 4
    bad = np.diag([1.0, 1.0, 1.0, -1.0])
    with pytest.raises(ValueError, match=r"sigma2 is not positive semi-definite \(smallest eigenvalue -1"):
        frechet_distance(np.zeros(d), np.eye(d), np.zeros(d), bad)
    with pytest.raises(ValueError, match="sigma1 is not symmetric"):
        frechet_distance(np.zeros(d), np.triu(np.ones((d, d))), np.zeros(d), np.eye(d))


def test_fd_refuses_results_that_overflow():
    d = 3
    with pytest.raises(ValueError, match="not finite"):
        frechet_distance(np.full(d, 1e200), np.eye(d), np.full(d, -1e200), np.eye(d))


# --- kernel distance -------------------------------------------------------------------------------

def test_poly_mmd2_matches_torchmetrics_and_the_pairwise_sum():
    x, y = features(20, 7, 6), features(20, 7, 7, shift=0.3, mix=True)
    ours = poly_mmd2(x, torch.from_numpy(y))
    assert ours == pytest.approx(pairwise_mmd2(x, y), rel=1e-10)
    assert ours == pytest.approx(poly_mmd(torch.from_numpy(x), torch.from_numpy(y)).item(), rel=1e-10)


def test_kid_is_mean_and_std_over_the_documented_subsets():
    a, b = features(90, 10, 8), features(70, 10, 9, shift=0.2)
    mean, std = kid(a, b, num_subsets=12, subset_size=40, seed=3)
    rng = np.random.default_rng(3)
    scores = []
    for _ in range(12):
        ia, ib = rng.choice(90, 40, replace=False), rng.choice(70, 40, replace=False)
        scores.append(poly_mmd(torch.from_numpy(a[ia]), torch.from_numpy(b[ib])).item())
    scores = torch.tensor(scores, dtype=torch.float64)
    assert mean == pytest.approx(scores.mean().item(), rel=1e-10)
    assert std == pytest.approx(scores.std(unbiased=False).item(), rel=1e-8)
    assert kid(a, b, num_subsets=12, subset_size=40, seed=3) == (mean, std)         # deterministic from seed
    assert kid(a, b, num_subsets=12, subset_size=40, seed=4) != (mean, std)


def test_kid_matches_torchmetrics_kid_on_whole_sets():
    # With subset_size = N every subset is the whole set (in some order), so torchmetrics' own random
    # draws give the same subsets as ours; the std over identical subsets is 0.
    a, b = features(60, 12, 10), features(60, 12, 11, shift=0.1, mix=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)                    # "saves all features in buffer"
        metric = KernelInceptionDistance(feature=Identity(12), subsets=3, subset_size=60)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    tm_mean, tm_std = metric.compute()
    mean, std = kid(a, b, num_subsets=3, subset_size=1000)           # capped at min(N_a, N_b) = 60
    assert mean == pytest.approx(tm_mean.item(), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12) and tm_std.item() == pytest.approx(0.0, abs=1e-12)


def test_kid_is_zero_for_one_distribution_and_positive_for_a_shift():
    a, same, shifted = features(200, 16, 12), features(200, 16, 13), features(200, 16, 14, shift=0.5)
    mean, std = kid(a, same, num_subsets=20, subset_size=100)
    assert abs(mean) <= 2 * std
    mean, std = kid(a, shifted, num_subsets=20, subset_size=100)
    assert mean > 10 * std > 0


# --- precision and recall --------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_matches_the_brute_force_loop(k):
    real, fake = features(60, 16, 15), features(50, 16, 16, shift=0.4, mix=True)
    expected = brute_precision_recall(real, fake, k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1                # the sets overlap partly
    assert precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-15)
    assert precision_recall(real, fake, k=k, batch=7) == precision_recall(real, fake, k=k)   # chunked


def test_precision_recall_counts_a_duplicate_as_a_neighbour_at_distance_zero():
    # Duplicated reals: with k = 1 a duplicate's ball has radius 0 (its twin), not the next distinct point;
    # the centre itself is left out by index, as in the loop, and float32 tensors are taken as they are.
    real = features(30, 5, 17)
    real = np.concatenate([real, real[:10]])
    fake = features(40, 5, 18, shift=0.2)
    expected = brute_precision_recall(real, fake, 1)
    assert precision_recall(torch.from_numpy(real).float(), fake, k=1, batch=8) == pytest.approx(
        brute_precision_recall(real.astype(np.float32).astype(np.float64), fake, 1), abs=1e-15)
    assert precision_recall(real, fake, k=1) == pytest.approx(expected, abs=1e-15)


def test_precision_recall_of_a_set_with_itself_is_one():
    x = features(25, 4, 19)
    assert precision_recall(x, x, k=2) == (1.0, 1.0)


# --- bad inputs ------------------------------------------------------------------------------------

X = features(10, 4, 20)


@pytest.mark.parametrize("call, message", [
    (lambda: feature_statistics(X[:1]), "features has 1 row"),
    (lambda: feature_statistics(X[0]), r"shape \[N, D\], got shape \(4,\)"),
    (lambda: frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), r"shapes \(3,\) and \(4,\)"),
    (lambda: frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3)), r"sigma1 has shape \(4, 4\)"),
    (lambda: frechet_distance(np.array([0, np.nan, 0]), np.eye(3), np.zeros(3), np.eye(3)),
     r"mu1 holds NaN or inf \(first at index \(1,\)\)"),
    (lambda: frechet_distance(np.zeros(2), np.array([[1, 0], [0, np.inf]]), np.zeros(2), np.eye(2)),
     r"sigma1 holds NaN or inf \(first at index \(1, 1\)\)"),
    (lambda: kid(X, features(10, 5, 21)), "different feature dimensions, 4 and 5"),
    (lambda: kid(X[:1], X), "features_a has 1 row"),
    (lambda: kid(X, X, subset_size=1), "subset_size=1 must be an integer >= 2"),
    (lambda: kid(X, X, num_subsets=0), "num_subsets=0 must be an integer >= 1"),
    (lambda: poly_mmd2(X, X[:5]), "x has 10 rows and y 5"),
    (lambda: precision_recall(X, X[:3], k=3), "k=3 needs more than k rows.*10 real and 3 fake; pass k <= 2"),
    (lambda: precision_recall(X, X, k=0), "k=0 must be an integer >= 1"),
    (lambda: precision_recall(X, X, batch=0), "batch=0 must be an integer >= 1"),
    (lambda: precision_recall(X, features(10, 3, 22)), "real and fake have different feature dimensions"),
    (lambda: precision_recall(X.astype(str), X), "expected numeric real"),
])
def test_bad_inputs_raise_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
