"""White-box Dirac gradient canaries: where they sit, how often they are sampled, what they add and observe;
and, on the Gaussian mechanism simulated alone, an audit bound at or below the epsilon of Google's
dp-accounting for the same (sigma, q, T, delta), while the same canaries without noise reach the most m
canaries can show."""
import math

import dp_accounting
import numpy as np
import pytest
import torch

from leakguard.dpaudit.bound import audit_bound, epsilon_lower_bound
from leakguard.dpaudit.gradient import GradientCanaries

SHAPES = [torch.Size([7, 3]), torch.Size([5]), torch.Size([4, 2, 3, 3])]


def test_each_canary_owns_one_coordinate():
    c = GradientCanaries(60, SHAPES, q=0.1, C=2.0, seed=1)
    assert len(set(c.coordinate.tolist())) == 60 and c.coordinate.max() < 21 + 5 + 72
    sizes = np.cumsum([0, 21, 5, 72])
    assert np.array_equal(sizes[c.param] + c.offset, c.coordinate)
    assert all(0 <= o < [21, 5, 72][p] for p, o in zip(c.param, c.offset))
    again = GradientCanaries(60, SHAPES, q=0.1, C=2.0, seed=1)
    assert np.array_equal(again.coordinate, c.coordinate) and np.array_equal(again.included, c.included)


def test_insert_adds_C_for_the_sampled_included_canaries_only():
    c = GradientCanaries(80, SHAPES, q=0.3, C=2.5, seed=0)
    counts = np.zeros(80)
    for step in range(400):
        summed = [torch.zeros(s) for s in SHAPES]
        c.insert(summed, step)
        flat = torch.cat([t.reshape(-1) for t in summed]).numpy()
        sampled = c.sampled(step)
        assert np.array_equal(flat[c.coordinate], 2.5 * sampled) and flat.sum() == pytest.approx(2.5 * sampled.sum())
        counts += sampled
    assert counts[~c.included].sum() == 0
    rate = counts[c.included].sum() / (400 * c.included.sum())
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / (400 * c.included.sum()))   # Poisson sampling at q


def test_observe_sums_the_released_coordinates():
    c = GradientCanaries(10, SHAPES, q=1.0, C=1.0, seed=3)
    rng = torch.Generator().manual_seed(0)
    released = [[torch.randn(s, generator=rng) for s in SHAPES] for _ in range(3)]
    for summed in released:
        c.observe(summed)
    want = sum(torch.cat([t.reshape(-1) for t in summed]).numpy()[c.coordinate] for summed in released)
    assert np.allclose(c.scores, want) and c.steps == 3


def simulate(sigma: float, q: float, steps: int, m: int, seed: int) -> GradientCanaries:
    """DP-SGD's release on its own: the clipped sum (only the canaries, here) plus N(0, sigma^2 C^2)."""
    c = GradientCanaries(m, [torch.Size([m * 4])], q=q, C=1.0, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        summed = [torch.zeros(m * 4, dtype=torch.float64)]
        c.insert(summed, t)
        if sigma > 0:
            summed[0] += sigma * torch.randn(m * 4, generator=gen, dtype=torch.float64)
        c.observe(summed)
    return c


def accountant_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    return dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(delta)


@pytest.mark.parametrize("sigma, q, steps, seed", [(1.0, 0.5, 40, 0), (2.0, 1.0, 20, 1), (0.8, 0.2, 60, 2)])
def test_with_noise_the_bound_stays_below_the_accountants_epsilon(sigma, q, steps, seed):
    delta = 1e-5
    c = simulate(sigma, q, steps, 1000, seed)
    eps = accountant_epsilon(sigma, q, steps, delta)
    bound = audit_bound(c.scores, c.included, delta=delta)["epsilon_lower_bound"]
    assert bound <= eps
    assert bound > 0          # and the audit is not blind: a strong mechanism still shows


def test_without_noise_every_guess_is_right():
    c = simulate(0.0, 0.1, 100, 500, 0)
    result = audit_bound(c.scores, c.included, delta=1e-5)
    best = result["best"]
    assert best["correct"] == best["guesses"]                      # the skipped noise leaves nothing to hide
    top = epsilon_lower_bound(500, best["guesses"], best["guesses"], 1e-5, result["level_per_test"])
    assert result["epsilon_lower_bound"] == pytest.approx(top) and top > 3.5 and best["guesses"] >= 300


def test_bad_canary_settings_are_refused():
    for kwargs, words in (({"m": 1}, "m=1"), ({"m": 10 ** 6}, "D's parameters"), ({"q": 0.0}, "q=0.0"),
                          ({"C": -1.0}, "C=-1.0")):
        args = {"m": 10, "shapes": SHAPES, "q": 0.1, "C": 1.0, **kwargs}
        with pytest.raises(ValueError, match=words.replace("(", r"\(")):
            GradientCanaries(**args)
