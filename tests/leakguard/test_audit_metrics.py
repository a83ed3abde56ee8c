"""Audit metrics against brute force: every rate counted one score at a time, the AUC as a count over
all (member, non-member) pairs, the ROC and TPR at FPR from every threshold tried, the KS statistic as a
sup over every point, the bootstrap re-drawn by hand. Scores are multiples of 1/8 so they tie often."""
import math

import numpy as np
import pytest
import torch

from leakguard.audit import metrics
from leakguard.audit.metrics import (bootstrap, chance_bounds, chance_rate, histogram, ks_statistic,
                                     leak_counts, leak_rate, leak_rate_intervals, leak_ratio,
                                     membership_intervals, membership_scores, roc_auc, roc_curve,
                                     top_leakers, tpr_at_fpr)


def tied_scores(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.normal(shift, 0.3, n) * 8) / 8, -1, 1)


def attack_set(seed=0, pos=25, neg=40):
    """Attack scores of members (higher on average) and non-members, with ties across the classes."""
    s = np.concatenate([tied_scores(pos, seed, 0.25), tied_scores(neg, seed + 1)])
    y = np.concatenate([np.ones(pos, np.int64), np.zeros(neg, np.int64)])
    return s, y


# --- the oracle ------------------------------------------------------------------------------------

def brute_rates(s, y, t):
    tp = sum(1 for a, b in zip(s, y) if b == 1 and a >= t)
    fp = sum(1 for a, b in zip(s, y) if b == 0 and a >= t)
    return fp / sum(y == 0), tp / sum(y == 1)


def brute_auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def brute_ecdf(sample, x):
    return sum(1 for v in sample if v <= x) / len(sample)


# --- identity leakage ------------------------------------------------------------------------------

def test_leak_rate_counts_scores_at_or_above_t():
    best = tied_scores(200, 1)
    for t in (-0.5, 0.0, 0.25, 0.375, 1.0, 1.5):
        assert leak_rate(best, t) == sum(1 for b in best if b >= t) / 200
    assert leak_rate(torch.tensor([0.5, 0.2], dtype=torch.float32), 0.5) == 0.5


def test_chance_rate_is_one_minus_no_false_match_in_n():
    for f, n in [(1e-2, 1), (1e-3, 500), (1e-4, 10_000), (0.3, 7), (0.0, 5), (1.0, 3), (0.5, 0)]:
        assert chance_rate(f, n) == pytest.approx(1 - (1 - f) ** n, rel=1e-12, abs=1e-300)
    assert chance_rate(1e-12, 10) == pytest.approx(1e-11, rel=1e-9)      # no cancellation for tiny fmr
    low, high = chance_bounds(1e-3, 100, 1000)
    assert low == chance_rate(1e-3, 100) and high == chance_rate(1e-3, 1000) and low < high


def test_chance_rate_matches_simulation():
    """Under the model, each of n comparisons an independent false match with probability f."""
    rng = np.random.default_rng(2)
    f, n = 0.002, 300
    hits = (rng.random((20_000, n)) < f).any(axis=1).mean()
    assert abs(hits - chance_rate(f, n)) < 4 * math.sqrt(chance_rate(f, n) / 20_000)


def test_leak_ratio():
    assert leak_ratio(0.2, 0.1) == 2.0
    assert leak_ratio(0.2, 0.0) == math.inf
    assert math.isnan(leak_ratio(0.0, 0.0))


def test_leak_counts_and_top_leakers_equal_a_loop():
    rng = np.random.default_rng(3)
    identities = np.array([40, 3, 17, 8, 25])
    best_ids = rng.choice(identities, 300)
    best = tied_scores(300, 4)
    t = 0.125
    counts = leak_counts(best, best_ids, t, identities)
    want = [sum(1 for i, b in zip(best_ids, best) if i == u and b >= t) for u in identities]
    assert counts.tolist() == want
    ids, c = top_leakers(identities, [5, 9, 0, 9, 2], 3)
    assert ids.tolist() == [3, 8, 40] and c.tolist() == [9, 9, 5]          # ties: the lower id first
    ids, c = top_leakers(identities, [0, 1, 0, 0, 0], 3)
    assert ids.tolist() == [3] and c.tolist() == [1]                       # only counts > 0


# --- identity membership ---------------------------------------------------------------------------

def test_membership_scores_equal_a_loop_over_reference_generated_pairs():
    rng = np.random.default_rng(5)
    ref_ids = rng.choice([4, 9, 2], 17)
    pair_scores = np.round(rng.normal(0, 0.3, (17, 30)) * 8) / 8         # [references, generated]
    nearest = pair_scores.max(axis=1)
    for k in (1, 2, 10):
        ids, best, topk_mean = membership_scores(nearest, ref_ids, k)
        assert ids.tolist() == [2, 4, 9]
        for u, b, m in zip(ids, best, topk_mean):
            mine = pair_scores[ref_ids == u]
            assert b == mine.max()                                         # max over every (r, g)
            per_ref = sorted((row.max() for row in mine), reverse=True)
            assert m == pytest.approx(np.mean(per_ref[:k]), abs=1e-15)


def test_roc_curve_tries_every_distinct_score():
    s, y = attack_set()
    fpr, tpr, t = roc_curve(s, y)
    assert t[0] == math.inf and fpr[0] == 0 and tpr[0] == 0
    assert t[1:].tolist() == sorted(set(s.tolist()), reverse=True)
    for a, b, th in zip(fpr, tpr, t):
        assert (a, b) == brute_rates(s, y, th)
    assert fpr[-1] == 1 and tpr[-1] == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_is_the_pair_count_with_ties_half(seed):
    s, y = attack_set(seed)
    auc = roc_auc(s, y)
    assert auc == pytest.approx(brute_auc(s, y), abs=1e-12)
    fpr, tpr, _ = roc_curve(s, y)
    assert auc == pytest.approx(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2), abs=1e-12)   # trapezoids
    assert roc_auc([1.0, 1.0], [1, 0]) == 0.5
    assert roc_auc([2.0, 1.0], [1, 0]) == 1.0


@pytest.mark.parametrize("target", [0.0, 1e-3, 0.025, 0.1, 0.3, 1.0])
def test_tpr_at_fpr_is_the_best_point_within_the_target(target):
    s, y = attack_set(4, pos=30, neg=80)
    points = [(*brute_rates(s, y, th), th) for th in [math.inf] + sorted(set(s.tolist()))]
    want = max((tpr, -fpr, th) for fpr, tpr, th in points if fpr <= target)   # highest TPR, then lowest FPR
    tpr, fpr, th = tpr_at_fpr(s, y, target)
    assert (tpr, -fpr, th) == want


def test_ks_is_the_sup_over_every_point():
    for seed in range(3):
        a, b = tied_scores(40, seed), tied_scores(55, seed + 10, 0.1)
        want = max(abs(brute_ecdf(a, x) - brute_ecdf(b, x)) for x in np.concatenate([a, b]))
        assert ks_statistic(a, b) == pytest.approx(want, abs=1e-15)
    assert ks_statistic([0.0, 1.0], [0.0, 1.0]) == 0
    assert ks_statistic([0.0], [1.0]) == 1


# --- bootstrap -------------------------------------------------------------------------------------

def test_bootstrap_is_the_stated_resampling():
    x = tied_scores(50, 6)
    strata = [np.arange(20), np.arange(20, 50)]
    got = bootstrap(lambda u: x[u].mean(), strata, resamples=200, seed=7, level=0.9)
    rng = np.random.default_rng(7)
    values = [x[np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata])].mean() for _ in range(200)]
    assert got.estimate == x.mean()
    assert (got.low, got.high) == pytest.approx(tuple(np.quantile(values, [0.05, 0.95])), abs=1e-15)
    assert (got.resamples, got.seed, got.level) == (200, 7, 0.9)


def test_leak_rate_intervals_are_reproducible_and_hold_the_estimate():
    best = tied_scores(400, 8)
    ts = [0.0, 0.25, 0.5]
    a = leak_rate_intervals(best, ts, resamples=300, seed=1)
    b = leak_rate_intervals(best, ts, resamples=300, seed=1)
    c = leak_rate_intervals(best, ts, resamples=300, seed=2)
    assert np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)
    assert not np.array_equal(a.low, c.low) or not np.array_equal(a.high, c.high)
    assert a.estimate.tolist() == [leak_rate(best, t) for t in ts]
    assert np.all(a.low <= a.estimate) and np.all(a.estimate <= a.high) and np.all(a.low < a.high)


def test_membership_intervals_are_reproducible_and_hold_the_estimate():
    s, y = attack_set(9, pos=60, neg=150)
    a = membership_intervals(s, y, fprs=(0.05, 0.1), resamples=200, seed=3)
    b = membership_intervals(s, y, fprs=(0.05, 0.1), resamples=200, seed=3)
    assert sorted(a) == ["auc", "tpr@0.05", "tpr@0.1"]
    assert a["auc"].estimate == roc_auc(s, y)
    assert a["tpr@0.1"].estimate == tpr_at_fpr(s, y, 0.1)[0]
    for name, iv in a.items():
        assert (iv.low, iv.high) == (b[name].low, b[name].high)
        assert iv.low <= iv.estimate <= iv.high and iv.low < iv.high


# --- histograms and bad inputs ---------------------------------------------------------------------

def test_histogram_bins_over_minus_one_to_one():
    s = np.array([-1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 1.0000001, -1.2])
    counts, edges = histogram(s, bins=4)
    assert edges.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert counts.tolist() == [3, 0, 1, 4]                                 # clipped; the last bin closed


@pytest.mark.parametrize("call,match", [
    (lambda: leak_rate([], 0.5), "best scores as a non-empty 1-D array"),
    (lambda: leak_rate([0.1, float("nan")], 0.5), "best scores hold NaN or inf"),
    (lambda: roc_auc([0.1, 0.2], [1, 1]), "needs members and non-members, got 2 members and 0"),
    (lambda: roc_auc([0.1, 0.2], [1, 2]), "labels must be 1 \\(member\\) or 0"),
    (lambda: roc_auc([0.1, 0.2], [1]), "labels as 2 integers"),
    (lambda: tpr_at_fpr([0.1, 0.2], [1, 0], 2.0), "target FPR 2.0 must be in"),
    (lambda: ks_statistic([], [0.1]), "first sample as a non-empty"),
    (lambda: chance_rate(1.5, 3), "fmr=1.5 must be in"),
    (lambda: leak_counts([0.9], [5], 0.5, [1, 2]), "best identity id 5 is not among the 2 identities"),
    (lambda: membership_scores([0.3], [1, 2], 1), "reference identity ids as 1 integers"),
    (lambda: bootstrap(np.mean, [np.arange(3), []]), "every stratum needs units"),
    (lambda: histogram([0.1], bins=0), "bins=0 must be >= 1"),
    (lambda: chance_bounds(1e-3, 10, 5), "5 images cannot hold 10 identities"),
    (lambda: leak_counts([0.9], [1], 0.5, [1, 1]), "identities must be distinct ids"),
    (lambda: top_leakers([1, 2], [3], 1), "2 identities but 1 counts"),
    (lambda: membership_scores([0.3], [1], 0), "k=0 must be >= 1"),
    (lambda: bootstrap(np.mean, [np.arange(3)], resamples=0), "resamples=0 must be >= 1"),
    (lambda: roc_auc(np.array(["a", "b"]), [1, 0]), "expected numeric scores"),
])
def test_bad_inputs_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_module_constants():
    assert metrics.FPRS == (1e-2, 1e-3) and metrics.RESAMPLES == 1000 and metrics.LEVEL == 0.95
