"""epsilon from LeakGuard's ledger, accountants and CLI against Google's dp-accounting (the oracle):
RDP within 1% of dp-accounting's RDP accountant, PRV within 2% of its PLD accountant."""
import json
import subprocess
import sys

import dp_accounting
import pytest
from dp_accounting import pld, rdp

from leakguard.privacy import PrivacyLedger, PrivacyLedgerError, epsilon, noise_multiplier

# (q, sigma, T, delta): the schedule first, then small and large q, sigma and T.
SCHEDULES = [(0.01, 1.0, 1000, 1e-5), (0.001, 0.8, 10000, 1e-6), (0.05, 2.0, 500, 1e-5), (0.1, 1.5, 200, 1e-3),
             (0.004, 0.6, 3000, 1e-5), (0.02, 1.2, 20000, 1e-5)]


def event(history):
    return dp_accounting.ComposedDpEvent([
        dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(s)), t)
        for s, q, t in history])


def oracle(history, delta, accountant):
    acc = rdp.RdpAccountant() if accountant == "rdp" else pld.PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(event(history))
    return acc.get_epsilon(delta)


@pytest.mark.parametrize("q, sigma, steps, delta", SCHEDULES)
def test_rdp_matches_dp_accounting_within_1_percent(q, sigma, steps, delta):
    ledger = PrivacyLedger(delta, "rdp")
    ledger.record("dp_d_step", sigma, q, steps)
    assert ledger.epsilon() == pytest.approx(oracle([(sigma, q, steps)], delta, "rdp"), rel=0.01)


@pytest.mark.parametrize("q, sigma, steps, delta", SCHEDULES[:5])
def test_prv_matches_dp_accounting_pld_within_2_percent(q, sigma, steps, delta):
    got = epsilon([(sigma, q, steps)], delta, "prv")
    assert got == pytest.approx(oracle([(sigma, q, steps)], delta, "pld"), rel=0.02)


def test_a_ledger_of_several_mechanisms_composes_them_all():
    history = [(1.0, 0.01, 400), (2.0, 0.05, 100), (1.0, 0.01, 300)]
    ledger = PrivacyLedger(1e-5, "rdp")
    for s, q, t in history:
        ledger.record("m", s, q, t)
    assert ledger.steps() == 800 and len(ledger.mechanisms) == 3
    assert ledger.epsilon() == pytest.approx(oracle(history, 1e-5, "rdp"), rel=0.01)
    assert PrivacyLedger(1e-5, "prv").epsilon() == 0.0  # nothing read yet


def test_one_step_at_a_time_equals_the_composed_schedule():
    ledger = PrivacyLedger(1e-5, "rdp")
    for _ in range(250):
        ledger.record("dp_d_step", 1.1, 0.02)
    assert ledger.mechanisms[0].steps == 250 and len(ledger.mechanisms) == 1
    assert ledger.epsilon() == pytest.approx(oracle([(1.1, 0.02, 250)], 1e-5, "rdp"), rel=1e-9 + 0.01)


def test_state_dict_round_trip_continues_and_other_settings_are_refused():
    a = PrivacyLedger(1e-5, "rdp")
    a.record("dp_d_step", 1.0, 0.01, 123)
    b = PrivacyLedger(1e-5, "rdp")
    b.load_state_dict(a.state_dict())
    b.record("dp_d_step", 1.0, 0.01, 877)
    assert b.steps() == 1000 and b.epsilon() == pytest.approx(oracle([(1.0, 0.01, 1000)], 1e-5, "rdp"), rel=0.01)
    with pytest.raises(PrivacyLedgerError, match=r"accountant: 'rdp' -> 'prv'"):
        PrivacyLedger(1e-5, "prv").load_state_dict(a.state_dict())
    with pytest.raises(PrivacyLedgerError, match=r"delta: 1e-05 -> 1e-06"):
        PrivacyLedger(1e-6, "rdp").load_state_dict(a.state_dict())
    with pytest.raises(PrivacyLedgerError, match="not a privacy ledger"):
        PrivacyLedger(1e-5).load_state_dict({"history": []})


def test_steps_within_is_the_largest_count_inside_the_target():
    ledger = PrivacyLedger(1e-5, "rdp")
    ledger.record("dp_d_step", 1.0, 0.01, 100)
    n = ledger.steps_within(2.0, 1.0, 0.01, limit=5000)
    assert 0 < n < 5000
    assert ledger.epsilon_after(1.0, 0.01, n) <= 2.0 < ledger.epsilon_after(1.0, 0.01, n + 1)
    assert oracle([(1.0, 0.01, 100 + n)], 1e-5, "rdp") <= 2.0 * 1.01


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_noise_multiplier_is_the_smallest_within_the_target(accountant):
    sigma = noise_multiplier(3.0, 0.01, 1000, 1e-5, accountant)
    assert 3.0 - 0.011 <= epsilon([(sigma, 0.01, 1000)], 1e-5, accountant) <= 3.0
    assert epsilon([(sigma * 0.97, 0.01, 1000)], 1e-5, accountant) > 3.0
    oracle_name = "rdp" if accountant == "rdp" else "pld"
    assert oracle([(sigma, 0.01, 1000)], 1e-5, oracle_name) <= 3.0 * (1.01 if accountant == "rdp" else 1.02)


def test_bad_mechanisms_are_refused_with_the_value():
    for args, match in [((0.0, 0.01, 10), "sigma=0.0"), ((1.0, 1.5, 10), "q=1.5"), ((1.0, 0.01, -1), "steps=-1")]:
        with pytest.raises(ValueError, match=match):
            epsilon([args], 1e-5)
    with pytest.raises(ValueError, match="accountant 'gdp'"):
        epsilon([(1.0, 0.01, 10)], 1e-5, "gdp")
    with pytest.raises(ValueError, match="raise the target epsilon"):
        noise_multiplier(1e-4, 1.0, 10 ** 6, 1e-5)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "training.cli", "privacy", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_epsilon_and_noise_agree_with_dp_accounting():
    done = cli("epsilon", "--sample-rate", "0.01", "--noise-multiplier", "1.0", "--steps", "1000", "--delta", "1e-5",
               "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["epsilon"] == pytest.approx(oracle([(1.0, 0.01, 1000)], 1e-5, "rdp"), rel=0.01)
    done = cli("epsilon", "-q", "0.01", "-s", "1.0", "-T", "1000", "--delta", "1e-5", "--accountant", "prv", "--json")
    assert json.loads(done.stdout)["epsilon"] == pytest.approx(oracle([(1.0, 0.01, 1000)], 1e-5, "pld"), rel=0.02)
    done = cli("noise", "--target-epsilon", "3", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5")
    assert done.returncode == 0 and done.stdout.startswith("sigma = ")
    sigma = float(done.stdout.split()[2])
    assert oracle([(sigma, 0.01, 1000)], 1e-5, "rdp") <= 3.0 * 1.01


@pytest.mark.parametrize("args, message", [
    (["epsilon", "-q", "0", "-s", "1", "-T", "10", "--delta", "1e-5"], "a sampling rate is in (0, 1]"),
    (["epsilon", "-q", "0.1", "-s", "nan", "-T", "10", "--delta", "1e-5"], "must be a finite number"),
    (["epsilon", "-q", "0.1", "-s", "1", "-T", "1.5", "--delta", "1e-5"], "not a whole number of steps"),
    (["epsilon", "-q", "0.1", "-s", "1", "-T", "10", "--delta", "1"], "delta is in (0, 1)"),
    (["noise", "-e", "0.0001", "-q", "1", "-T", "1000000", "--delta", "1e-5"], "raise the target epsilon"),
    (["show", "no-such.pt"], "checkpoint not found: no-such.pt"),
])
def test_cli_bad_inputs_are_one_line_errors(args, message):
    done = cli(*args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("q, sigma, order", [(0.064, 1.2714, 3.6), (0.16, 6.31, 20.5), (0.01, 1.0, 1.5)])
def test_rdp_at_a_fractional_order_is_the_exact_integral(q, sigma, order):
    """Why the ledger can sit a little below dp-accounting (7.9947 against 7.9992 for configs/synthfaces32-dp.yaml):
    at fractional orders dp-accounting sums the series' terms in absolute value, an upper bound, while the
    ledger's RDP (Opacus') keeps their signs. The signed sum is the Renyi divergence itself: here it equals
    the integral E_{z ~ N(0, s^2)}[((1 - q) + q exp((2z - 1) / 2s^2))^order], taken numerically (mpmath), so the
    lower epsilon is exact, not optimistic, and dp-accounting's is looser."""
    import mpmath
    from opacus.accountants.analysis import rdp as opacus_rdp
    from dp_accounting.rdp import rdp_privacy_accountant as google_rdp

    mpmath.mp.dps = 40
    density = lambda z: mpmath.npdf(z, 0, sigma) * ((1 - q) + q * mpmath.e ** ((2 * z - 1) / (2 * sigma ** 2))) ** order  # noqa: E731
    exact = float(mpmath.log(mpmath.quad(density, [-mpmath.inf, -10 * sigma, 0, 0.5, 10 * sigma, mpmath.inf]))
                  / (order - 1))
    assert opacus_rdp._compute_rdp(q, sigma, order) == pytest.approx(exact, rel=1e-8)
    assert google_rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, [order])[0] >= exact * (1 - 1e-12)
