"""Privacy accountants for composed Poisson-subsampled Gaussian mechanisms: Opacus's RDP accountant
(Mironov 2017, with the conversion to (epsilon, delta) of Balle et al. 2020) and its PRV accountant
(Gopi et al. 2021), behind a registry of names.

A history is a list of (sigma, q, steps): the noise multiplier, the Poisson sampling rate and how
many times that mechanism ran. Both accountants return an upper bound on epsilon at `delta`.

The PRV accountant discretizes every mechanism on one grid whose size grows with the number of steps
and with epsilon (sigma 0.1, q 1, 1000 steps would take 23 GB). The grid is sized first, cheaply and
as Opacus sizes it, and a computation past PRV_MAX_CELLS (or past the privacy losses its float64
arithmetic holds) is refused naming the rdp accountant, so `leakguard privacy` and training both stop
in a second with one line instead of being killed. The noise search is a bounded bisection, and a
target epsilon or a sigma outside what the accountants compute is refused.
"""
import math
import warnings
from typing import Callable, Sequence

from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV, compute_safe_domain_size

History = Sequence[tuple[float, float, int]]

# RDP orders: Opacus's defaults stop at 63, which loses up to a few percent of epsilon at small
# sigma or many steps; these follow the denser, longer grid of Google's dp-accounting.
RDP_ORDERS = ([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [64, 80, 96, 128, 192, 256, 384,
                                                                           512, 768, 1024])
PRV_EPS_ERROR = 0.01  # absolute error allowed in the PRV accountant's epsilon (it returns the upper bound)
# The PRV accountant's peak memory is about (4 x mechanisms + 24) float64 arrays over its grid: per mechanism
# its pmf and the FFT composition's; then the discretization's temporaries and pocketfft's Bluestein buffers
# (up to ~13 arrays when the grid size has a large prime factor). Measured peak RSS: 9 to 21 arrays for one
# mechanism, 27 for two, 31 for four. Cells = points x (PRV_ARRAYS_PER_MECHANISM x mechanisms +
# PRV_WORK_ARRAYS) are refused past PRV_MAX_CELLS (8 bytes each: 2 GiB, about 10 s of work).
PRV_ARRAYS_PER_MECHANISM = 4
PRV_WORK_ARRAYS = 24
PRV_MAX_CELLS = 2 ** 28
PRV_MAX_HALF_WIDTH = 700   # the PRV grid's privacy losses t stop here: e^t overflows a float64 past 709
# Noise multipliers: below MIN_SIGMA epsilon is infinite for every purpose (and far below, sigma^2 underflows
# to 0 and Opacus divides by it), so epsilon() says inf without asking an accountant; above MAX_SIGMA it is
# 0 to any precision (far above, sigma^2 overflows), refused; the noise search stops there, as Opacus's does.
MIN_SIGMA, MAX_SIGMA = 1e-3, 1e6
MAX_TARGET_EPSILON = 100   # a larger target bounds nothing (a likelihood ratio of e^100)
# The noise search's bisection ends within MAX_HALVINGS halvings, or once its bracket is SIGMA_PRECISION narrow
# relative to sigma (the tolerance of 0.01 in epsilon ends it long before, but for a bracket that cannot close).
MAX_HALVINGS = 64
SIGMA_PRECISION = 1e-6


class AccountantCostError(ValueError):
    """A computation the PRV accountant is not allowed (more memory than PRV_MAX_CELLS) or cannot do (privacy
    losses past its float64 range); the message says what to use instead."""


def _quiet(get):
    with warnings.catch_warnings():
        # "Optimal order is the smallest/largest alpha": the RDP bound is still valid, only perhaps not
        # the tightest; the noise bisection probes such extremes on purpose (PRV sizes its domain by RDP).
        warnings.filterwarnings("ignore", message="Optimal order is the")
        # At q = 1 the PRV's privacy-loss map takes log(1 - q) = log 0 = -inf on purpose (Opacus's prvs.py):
        # the result is right, numpy only says that it divided by zero.
        warnings.filterwarnings("ignore", message="divide by zero encountered in log", category=RuntimeWarning)
        return float(get())


def _rdp(history: History, delta: float) -> float:
    acc = RDPAccountant()
    acc.history = [tuple(h) for h in history]
    return _quiet(lambda: acc.get_epsilon(delta=delta, alphas=RDP_ORDERS))


def prv_grid(history: History, delta: float) -> tuple[float, float]:
    """(L, points) of the grid Opacus's PRV accountant discretizes each mechanism of `history` on at `delta`:
    the domain [-L, L], L from RDP bounds (Gopi et al. 2021, remark 5.6), at the mesh eps_error /
    sqrt(T log(12 / delta_error) / 2), as PRVAccountant sizes it; inf when no RDP bound is finite."""
    delta_error = delta / 1000  # Opacus's default
    prvs = [PoissonSubsampledGaussianPRV(q, s) for s, q, _ in history]
    steps = [n for _, _, n in history]
    half = _quiet(lambda: compute_safe_domain_size(prvs, steps, PRV_EPS_ERROR, delta_error))
    mesh = PRV_EPS_ERROR / math.sqrt(sum(steps) * math.log(12 / delta_error) / 2)
    return half, (2 * half / mesh + 2 if math.isfinite(half) else math.inf)


def prv_grid_points(history: History, delta: float) -> float:
    return prv_grid(history, delta)[1]


def check_prv_cost(history: History, delta: float) -> None:
    """Refuses (AccountantCostError, one line) a PRV computation whose grid would pass PRV_MAX_CELLS, or
    reach privacy losses past PRV_MAX_HALF_WIDTH (epsilon in the hundreds: its arithmetic overflows)."""
    half, points = prv_grid(history, delta)
    cells = points * (PRV_ARRAYS_PER_MECHANISM * len(history) + PRV_WORK_ARRAYS)
    what = (f"sigma={history[0][0]:g}, q={history[0][1]:g}, {history[0][2]} steps" if len(history) == 1 else
            f"{len(history)} mechanisms, {sum(n for _, _, n in history)} steps")
    advice = ("use the rdp accountant (--accountant rdp, or privacy.accountant=rdp in training), or more noise or "
              "fewer steps")
    if cells > PRV_MAX_CELLS:
        raise AccountantCostError(
            f"the prv accountant would need about {cells * 8 / 2 ** 30:.3g} GiB ({points:.3g} grid points per "
            f"mechanism) for {what} at delta={delta:g}, more than the {PRV_MAX_CELLS * 8 / 2 ** 30:g} GiB it is "
            f"allowed (its grid grows with the steps and with epsilon); {advice}")
    if half > PRV_MAX_HALF_WIDTH:
        raise AccountantCostError(f"the prv accountant cannot compute epsilon for {what} at delta={delta:g}: its grid "
                                  f"would reach privacy losses of {half:.3g}, past the {PRV_MAX_HALF_WIDTH} where its "
                                  f"arithmetic overflows (epsilon is in the hundreds or more); {advice}")


def _prv(history: History, delta: float) -> float:
    check_prv_cost(history, delta)
    acc = PRVAccountant()
    acc.history = [tuple(h) for h in history]
    return _quiet(lambda: acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR))


ACCOUNTANTS: dict[str, Callable[[History, float], float]] = {"rdp": _rdp, "prv": _prv}


def check_accountant(name: str) -> None:
    if name not in ACCOUNTANTS:
        raise ValueError(f"accountant {name!r} is not one of {', '.join(ACCOUNTANTS)}")


def check_mechanism(sigma: float, q: float, steps: int) -> None:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"noise multiplier sigma={sigma!r} must be a positive finite number")
    if sigma > MAX_SIGMA:
        raise ValueError(f"noise multiplier sigma={sigma!r} is above {MAX_SIGMA:g}, the largest the accountants "
                         "compute (epsilon is 0 to any precision long before)")
    if not (isinstance(q, (int, float)) and 0 < q <= 1):
        raise ValueError(f"sampling rate q={q!r} must be in (0, 1]")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps={steps!r} must be an integer >= 0")


def check_delta(delta: float) -> None:
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ValueError(f"delta={delta!r} must be in (0, 1)")


def epsilon(history: History, delta: float, accountant: str = "rdp") -> float:
    """epsilon at `delta` after every mechanism in `history` (0 for an empty history)."""
    check_accountant(accountant)
    check_delta(delta)
    for s, q, n in history:
        check_mechanism(s, q, n)
    history = [(float(s), float(q), int(n)) for s, q, n in history if n > 0]
    if any(s < MIN_SIGMA for s, _, _ in history):
        return math.inf  # noise this small protects nothing (and sigma^2 underflows in the accountants' arithmetic)
    return ACCOUNTANTS[accountant](history, delta) if history else 0.0


def check_target_epsilon(target_epsilon: float) -> None:
    if not (isinstance(target_epsilon, (int, float)) and math.isfinite(target_epsilon)
            and 0 < target_epsilon <= MAX_TARGET_EPSILON):
        raise ValueError(f"target epsilon {target_epsilon!r} must be a number in (0, {MAX_TARGET_EPSILON}]: a larger "
                         "one bounds nothing")


def _probe(sigma: float, q: float, steps: int, delta: float, accountant: str) -> tuple[float, Exception | None]:
    """epsilon at a sigma the noise search tries, and the cost refusal when there is one: a sigma below
    MIN_SIGMA (epsilon inf) or one whose PRV grid is too large counts as too little noise (inf)."""
    if sigma < MIN_SIGMA:
        return math.inf, None
    try:
        return epsilon([(sigma, q, steps)], delta, accountant), None
    except AccountantCostError as e:
        return math.inf, e


def noise_multiplier(target_epsilon: float, q: float, steps: int, delta: float, accountant: str = "rdp",
                     tolerance: float = 0.01) -> float:
    """The smallest sigma (to `tolerance` in epsilon, from below) whose `steps` runs at rate q spend at
    most `target_epsilon` at `delta`: Opacus's bisection (get_noise_multiplier) with this module's accountant
    settings, a bounded bisection (MAX_HALVINGS, SIGMA_PRECISION), and a sigma whose PRV grid is too large taken
    as too little noise (when that hides the answer, AccountantCostError says so)."""
    check_accountant(accountant)
    check_delta(delta)
    check_target_epsilon(target_epsilon)
    check_mechanism(1.0, q, steps)
    if steps == 0:
        raise ValueError("steps=0: no mechanism runs, so no noise multiplier is needed")
    sigma_low, sigma_high, eps_high, refused = 0.0, 10.0, math.inf, None
    while eps_high > target_epsilon:
        sigma_high *= 2
        if sigma_high > MAX_SIGMA:
            if refused is not None:
                raise refused
            raise ValueError(f"no noise multiplier up to sigma={MAX_SIGMA:g} reaches epsilon={target_epsilon} at "
                             f"delta={delta} with q={q} over {steps} steps; raise the target epsilon, or lower the "
                             "sampling rate or the number of steps")
        eps_high, refused = _probe(sigma_high, q, steps, delta, accountant)
    refused = None  # from here: the cost refusal that set sigma_low last, if one did
    for _ in range(MAX_HALVINGS):
        if target_epsilon - eps_high <= tolerance or sigma_high - sigma_low <= SIGMA_PRECISION * sigma_high:
            break
        sigma = (sigma_low + sigma_high) / 2
        eps, why = _probe(sigma, q, steps, delta, accountant)
        if eps < target_epsilon:
            sigma_high, eps_high = sigma, eps
        else:
            sigma_low, refused = sigma, why
    if refused is not None and target_epsilon - eps_high > tolerance:
        raise AccountantCostError(f"{refused} (the noise search for epsilon={target_epsilon} reached sigma="
                                  f"{sigma_high:.4g}, epsilon {eps_high:.4g}, and could not look lower)")
    return sigma_high
