"""Private Evolution's mechanism against independent oracles: its epsilon against Google's dp-accounting
(T Gaussian mechanisms, no subsampling) and the exact Gaussian-DP curve, the vote histogram's sensitivity
against an added or removed person with many images, and its nearest-candidate search against brute force."""
import math

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting import pld, rdp
from scipy.stats import norm

from leakguard.pe import MECHANISM, noisy_votes, plan_sigma, resample, survivor_weights, vote_histogram
from leakguard.pe.mechanism import planned_epsilon
from leakguard.privacy import PrivacyLedger


def oracle(sigma: float, T: int, delta: float, accountant: str) -> float:
    acc = rdp.RdpAccountant() if accountant == "rdp" else pld.PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma), T))
    return acc.get_epsilon(delta)


def exact_epsilon(sigma: float, T: int, delta: float) -> float:
    """T Gaussian mechanisms of sensitivity 1 are mu-GDP with mu = sqrt(T) / sigma (Dong, Roth, Su 2019);
    its epsilon at delta solves delta = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2) (Balle, Wang 2018)."""
    mu = math.sqrt(T) / sigma

    def delta_of(eps):
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


@pytest.mark.parametrize("sigma, T, delta", [(1.1, 3, 1e-5), (2.0, 10, 1e-5), (10.0, 10, 1e-5), (5.0, 50, 1e-6),
                                             (0.8, 1, 1e-3)])
def test_the_ledger_of_T_histograms_spends_what_dp_accounting_says(sigma, T, delta):
    ledger = PrivacyLedger(delta, "rdp")
    for _ in range(T):
        ledger.record(MECHANISM, sigma=sigma, q=1.0)
    assert ledger.steps(MECHANISM) == T
    assert ledger.epsilon() == pytest.approx(oracle(sigma, T, delta, "rdp"), rel=0.01)
    # RDP is an upper bound: at or above the exact curve, never below it
    assert ledger.epsilon() >= exact_epsilon(sigma, T, delta) * (1 - 1e-6)
    prv = planned_epsilon(sigma, T, delta, "prv")
    assert prv == pytest.approx(oracle(sigma, T, delta, "pld"), rel=0.02)
    assert prv == pytest.approx(exact_epsilon(sigma, T, delta), rel=0.02)


@pytest.mark.parametrize("target, T", [(1.0, 10), (8.0, 10), (8.0, 3)])
def test_planned_sigma_spends_at_most_the_target_and_close_to_it(target, T):
    sigma = plan_sigma(target, T, 1e-5)
    spent = oracle(sigma, T, 1e-5, "rdp")
    assert spent <= target * 1.01 and spent >= target - 0.05
    assert planned_epsilon(sigma, T, 1e-5) <= target


def people(n_people: int, per_person, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, n_people) if per_person is None else np.full(n_people, per_person)
    ids = np.repeat(np.arange(n_people), counts)
    centres = rng.normal(size=(n_people, d))
    emb = centres[ids] + 0.3 * rng.normal(size=(len(ids), d))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32), ids


@pytest.mark.parametrize("vote", ["centroid", "images"])
def test_adding_or_removing_one_person_with_many_images_moves_the_histogram_by_at_most_1(vote):
    rng = np.random.default_rng(1)
    cand = rng.normal(size=(40, 16)).astype(np.float32)
    emb, ids = people(30, None)
    for extra_images in (1, 7, 60):
        # the added person's images are spread out, so under "images" they vote for many candidates
        new = rng.normal(size=(extra_images, 16)).astype(np.float32)
        bigger = np.concatenate([emb, new]), np.concatenate([ids, np.full(extra_images, 999)])
        h = vote_histogram(emb, ids, cand, vote)
        h2 = vote_histogram(*bigger, cand, vote)
        diff = h2 - h
        assert float(diff.sum()) == pytest.approx(1.0)          # one person: one vote in total
        assert bool((diff >= -1e-12).all())                     # nobody else's vote moved
        assert float(torch.linalg.vector_norm(diff)) <= 1 + 1e-12
    # removing one of the original people
    keep = ids != 3
    diff = vote_histogram(emb, ids, cand, vote) - vote_histogram(emb[keep], ids[keep], cand, vote)
    assert float(diff.sum()) == pytest.approx(1.0) and float(torch.linalg.vector_norm(diff)) <= 1 + 1e-12


def brute_force(emb, ids, cand, vote):
    cand = cand / np.linalg.norm(cand, axis=1, keepdims=True)
    hist = np.zeros(len(cand))
    for person in np.unique(ids):
        rows = emb[ids == person].astype(np.float64)
        if vote == "centroid":
            c = rows.sum(0)
            hist[np.argmax(cand.astype(np.float64) @ (c / np.linalg.norm(c)))] += 1
        else:
            for r in rows:
                hist[np.argmax(cand.astype(np.float64) @ r)] += 1 / len(rows)
    return hist


@pytest.mark.parametrize("vote", ["centroid", "images"])
def test_votes_equal_brute_force_and_do_not_depend_on_the_memory_budget(vote):
    emb, ids = people(50, None, d=8, seed=2)
    cand = np.random.default_rng(3).normal(size=(300, 8)).astype(np.float32) * 3   # not unit rows: normalised
    full = vote_histogram(emb, ids, cand, vote)
    tiny = vote_histogram(emb, ids, cand, vote, memory_bytes=4096)                  # many small chunks
    assert torch.equal(full, tiny)
    np.testing.assert_allclose(full.numpy(), brute_force(emb, ids, cand, vote), atol=1e-12)
    assert float(full.sum()) == pytest.approx(50)


def test_noise_is_gaussian_with_std_sigma_and_reproducible_from_the_key():
    h = torch.zeros(200_000, dtype=torch.float64)
    a = noisy_votes(h, 3.0, torch.Generator().manual_seed(5))
    b = noisy_votes(h, 3.0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert float(a.std()) == pytest.approx(3.0, rel=0.01) and abs(float(a.mean())) < 0.03


def test_survivors_and_resampling_follow_the_noisy_votes():
    noisy = torch.tensor([5.0, 1.0, -2.0, 15.0], dtype=torch.float64)
    w = survivor_weights(noisy, 2.0)
    assert w.tolist() == [5.0, 0.0, 0.0, 15.0]
    picks = resample(w, 40_000, torch.Generator().manual_seed(0))
    share = torch.bincount(picks, minlength=4).double() / len(picks)
    assert share[1] == 0 and share[2] == 0 and float(share[3]) == pytest.approx(0.75, abs=0.01)
    assert resample(torch.zeros(4), 3, torch.Generator()) is None


def test_bad_histogram_inputs_are_refused_naming_them():
    emb, ids = people(5, 2)
    with pytest.raises(ValueError, match="vote="):
        vote_histogram(emb, ids, emb, "majority")
    with pytest.raises(ValueError, match="dimensions"):
        vote_histogram(emb, ids, emb[:, :4], "centroid")
    with pytest.raises(ValueError, match="identity ids"):
        vote_histogram(emb, ids[:3], emb, "centroid")
    with pytest.raises(ValueError, match="all-zero row"):
        vote_histogram(emb, ids, np.zeros((3, emb.shape[1]), np.float32), "centroid")
