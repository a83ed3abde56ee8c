"""The DP-SGD stages: clipping bounds each unit's contribution by C (the sensitivity the accountant
assumes), a non-finite unit contributes nothing, and the noise has standard deviation sigma * C."""
import math

import pytest
import torch

from leakguard.privacy import add_noise, clip_and_accumulate, per_unit_norms


def grads(units=6, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(units, 3, 4, generator=g, dtype=torch.float64) * scale,
            torch.randn(units, 5, generator=g, dtype=torch.float64) * scale]


def clipped_sum(gs, C):
    out = [torch.zeros(g.shape[1:], dtype=g.dtype) for g in gs]
    clip_and_accumulate(gs, C, out)
    return out


def flat(ts):
    return torch.cat([t.flatten() for t in ts])


def test_clipping_matches_an_explicit_loop():
    gs, C = grads(scale=0.7), 2.0
    expected = [torch.zeros(g.shape[1:], dtype=g.dtype) for g in gs]
    for u in range(6):
        norm = math.sqrt(sum(float(g[u].square().sum()) for g in gs))
        factor = min(1.0, C / (norm + 1e-6))
        for e, g in zip(expected, gs):
            e += g[u] * factor
    for got, e in zip(clipped_sum(gs, C), expected):
        torch.testing.assert_close(got, e, rtol=1e-12, atol=1e-12)
    norms = per_unit_norms(gs)
    assert norms.shape == (6,) and float(norms[0]) == pytest.approx(math.sqrt(sum(float(g[0].square().sum())
                                                                                    for g in gs)))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e8])
def test_adding_or_removing_one_unit_moves_the_sum_by_at_most_C(scale):
    C = 0.5
    base = grads(units=5, seed=1)
    for u_scale in (scale, -scale):
        extra = grads(units=1, seed=2, scale=u_scale)
        both = [torch.cat([b, e]) for b, e in zip(base, extra)]
        diff = flat(clipped_sum(both, C)) - flat(clipped_sum(base, C))
        assert float(diff.norm()) <= C * (1 + 1e-9)


def test_replacing_one_unit_moves_the_sum_by_at_most_2C():
    C = 1.0
    a = grads(units=4, seed=3, scale=10)
    b = [t.clone() for t in a]
    for t in b:
        t[0] = -t[0] * 1e6  # the opposite direction, far past the clip norm
    diff = flat(clipped_sum(a, C)) - flat(clipped_sum(b, C))
    assert float(diff.norm()) <= 2 * C * (1 + 1e-9)
    assert float(diff.norm()) > 1.9 * C  # the bound is reached: replacement sensitivity is 2C, not C


def test_a_unit_with_non_finite_gradients_contributes_zero():
    gs = grads(units=3, seed=4)
    bad = [t.clone() for t in gs]
    bad[0][1, 0, 0] = float("inf")
    bad[1][1, 2] = float("nan")
    keep = [torch.stack([t[0], t[2]]) for t in gs]
    torch.testing.assert_close(flat(clipped_sum(bad, 1.0)), flat(clipped_sum(keep, 1.0)))


def test_noise_has_std_sigma_C_per_coordinate():
    """200,000 coordinates: the sample std has a relative standard error of 1/sqrt(2n) = 0.16%, so
    1% is more than 6 standard errors; the mean is within 5 standard errors of 0."""
    sigma, C = 1.3, 0.7
    summed = [torch.zeros(100_000), torch.zeros(500, 200)]
    add_noise(summed, sigma, C, torch.Generator().manual_seed(0))
    x = flat(summed).double()
    n = x.numel()
    assert float(x.std()) == pytest.approx(sigma * C, rel=0.01)
    assert abs(float(x.mean())) < 5 * sigma * C / math.sqrt(n)
    again = [torch.zeros(100_000), torch.zeros(500, 200)]
    add_noise(again, sigma, C, torch.Generator().manual_seed(0))
    assert torch.equal(flat(again), flat(summed))  # a pure function of the generator's seed


def test_bad_shapes_and_norms_are_refused():
    with pytest.raises(ValueError, match="first .unit. dimension"):
        clip_and_accumulate([torch.zeros(3, 2), torch.zeros(4, 2)], 1.0, [torch.zeros(2), torch.zeros(2)])
    with pytest.raises(ValueError, match="C=0"):
        clip_and_accumulate([torch.zeros(3, 2)], 0, [torch.zeros(2)])
