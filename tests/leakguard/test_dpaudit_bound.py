"""The one-run audit's bound (Steinke, Nasr & Jagielski 2023) against its reference values and against an
independent computation from the binomial tail."""
import math

import numpy as np
import pytest
from scipy.stats import binom

from leakguard.dpaudit.bound import audit_bound, epsilon_lower_bound, guess_grid, guesses, p_value


@pytest.mark.parametrize("r, v, want", [(100, 100, 3.49), (1000, 1000, 5.81), (100, 75, 0.70)])
def test_reference_values(r, v, want):
    # delta = 0, 95% confidence (the paper's figures)
    assert epsilon_lower_bound(r, r, v) == pytest.approx(want, abs=0.005)


def oracle(r, v, level=0.05):
    """The largest epsilon on a fine grid whose binomial tail P[Binomial(r, e^eps/(1+e^eps)) >= v] <= level."""
    eps = np.linspace(0, 12, 120001)
    q = np.exp(eps) / (1 + np.exp(eps))
    tail = binom.sf(v - 1, r, q)
    rejected = eps[tail <= level]
    return float(rejected.max()) if len(rejected) else 0.0


@pytest.mark.parametrize("r, v", [(10, 10), (20, 17), (50, 40), (64, 40), (200, 130), (30, 15)])
def test_bound_equals_the_binomial_tail_computed_independently(r, v):
    assert epsilon_lower_bound(r, r, v) == pytest.approx(oracle(r, v), abs=2e-4)


def test_delta_only_lowers_the_bound_and_zero_delta_is_the_binomial_tail():
    for r, v in ((100, 90), (40, 40)):
        assert p_value(r, r, v, 1.0) == pytest.approx(float(binom.sf(v - 1, r, 1 / (1 + math.exp(-1)))))
        assert epsilon_lower_bound(r, r, v, delta=1e-3) < epsilon_lower_bound(r, r, v)


def delta_oracle(m, r, v, eps, delta):
    """The paper's approximate-DP p-value written a second way: the mass of [v - i, v) as a difference of
    binomial survival functions (not a running sum of pmfs), maximised over i in one vectorised step. This is
    the form DeepMind's jax_privacy.auditing uses; the paper's own listing (as reproduced in
    ubc-systopia/panoramia-privacy-measurement) accumulates pmfs as ours does, with the same 2 m delta alpha."""
    q = 1 / (1 + math.exp(-eps))
    beta = binom.sf(v - 1, r, q)
    i = np.arange(1, v + 1)
    alpha = np.max((binom.sf(v - i - 1, r, q) - beta) / i, initial=0.0)
    return min(1.0, beta + 2 * m * delta * alpha)


@pytest.mark.parametrize("m, r, v", [(200, 40, 38), (200, 120, 76), (1000, 1000, 990), (100, 100, 75), (64, 10, 9)])
@pytest.mark.parametrize("eps, delta", [(0.3, 1e-5), (1.0, 1e-5), (2.0, 1e-3), (0.0, 1e-2)])
def test_the_delta_term_equals_a_second_computation(m, r, v, eps, delta):
    assert p_value(m, r, v, eps, delta) == pytest.approx(delta_oracle(m, r, v, eps, delta), rel=1e-9, abs=1e-12)


def test_scores_reported_together_split_the_level():
    rng = np.random.default_rng(1)
    included = rng.random(200) < 0.5
    scores = included + rng.normal(0, 0.6, 200)
    one, two = audit_bound(scores, included), audit_bound(scores, included, comparisons=2)
    assert two["level_per_test"] == pytest.approx(one["level_per_test"] / 2) and two["tests"] == 2 * one["tests"]
    best = two["best"]
    assert two["epsilon_lower_bound"] == pytest.approx(
        epsilon_lower_bound(200, best["guesses"], best["correct"], level=0.05 / (2 * one["tests"])))
    assert 0 < two["epsilon_lower_bound"] < one["epsilon_lower_bound"] and "for each of 2 scores" in two["correction"]
    with pytest.raises(ValueError, match="comparisons"):
        audit_bound(scores, included, comparisons=0)


def test_audit_on_score_vectors_matches_the_guesses_it_reports():
    rng = np.random.default_rng(0)
    included = rng.random(200) < 0.5
    perfect = np.where(included, 1.0, 0.0) + rng.random(200) * 0.1       # separates in from out
    r = audit_bound(perfect, included)
    best = r["best"]
    assert best["correct"] == best["guesses"] and r["epsilon_lower_bound"] > 1.5
    # the reported bound is the binomial-tail bound of its own guesses at the corrected level
    level = 0.05 / r["tests"]
    assert r["epsilon_lower_bound"] == pytest.approx(oracle(best["guesses"], best["correct"], level), abs=2e-4)
    t = guesses(perfect, best["k_plus"], best["k_minus"])
    assert int(((t == 1) & included).sum() + ((t == -1) & ~included).sum()) == best["correct"]
    noise = rng.random(200)                                               # scores that know nothing
    assert audit_bound(noise, included)["epsilon_lower_bound"] < 0.5
    assert r["tests"] == len(guess_grid(200)) and "Bonferroni" in r["correction"]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        audit_bound([1.0], [True])
    with pytest.raises(ValueError):
        audit_bound([1.0, float("nan")], [True, False])
    with pytest.raises(ValueError):
        p_value(10, 5, 6, 1.0)
