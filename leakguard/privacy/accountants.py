"""Privacy accountants for composed Poisson-subsampled Gaussian mechanisms: Opacus's RDP accountant
(Mironov 2017, with the conversion to (epsilon, delta) of Balle et al. 2020) and its PRV accountant
(Gopi et al. 2021), behind a registry of names.

A history is a list of (sigma, q, steps): the noise multiplier, the Poisson sampling rate and how
many times that mechanism ran. Both accountants return an upper bound on epsilon at `delta`.
"""
import math
import warnings
from typing import Callable, Sequence

from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

History = Sequence[tuple[float, float, int]]

# RDP orders: Opacus's defaults stop at 63, which loses up to a few percent of epsilon at small
# sigma or many steps; these follow the denser, longer grid of Google's dp-accounting.
RDP_ORDERS = ([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [64, 80, 96, 128, 192, 256, 384,
                                                                           512, 768, 1024])
PRV_EPS_ERROR = 0.01  # absolute error allowed in the PRV accountant's epsilon (it returns the upper bound)


def _quiet(get):
    with warnings.catch_warnings():
        # "Optimal order is the smallest/largest alpha": the RDP bound is still valid, only perhaps not
        # the tightest; the noise bisection probes such extremes on purpose (PRV sizes its domain by RDP).
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(get())


def _rdp(history: History, delta: float) -> float:
    acc = RDPAccountant()
    acc.history = [tuple(h) for h in history]
    return _quiet(lambda: acc.get_epsilon(delta=delta, alphas=RDP_ORDERS))


def _prv(history: History, delta: float) -> float:
    acc = PRVAccountant()
    acc.history = [tuple(h) for h in history]
    return _quiet(lambda: acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR))


ACCOUNTANTS: dict[str, Callable[[History, float], float]] = {"rdp": _rdp, "prv": _prv}
OPTIONS = {"rdp": {"alphas": RDP_ORDERS}, "prv": {"eps_error": PRV_EPS_ERROR}}  # for get_noise_multiplier


def check_accountant(name: str) -> None:
    if name not in ACCOUNTANTS:
        raise ValueError(f"accountant {name!r} is not one of {', '.join(ACCOUNTANTS)}")


def check_mechanism(sigma: float, q: float, steps: int) -> None:
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"noise multiplier sigma={sigma!r} must be a positive finite number")
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
    return ACCOUNTANTS[accountant](history, delta) if history else 0.0


def noise_multiplier(target_epsilon: float, q: float, steps: int, delta: float, accountant: str = "rdp",
                     tolerance: float = 0.01) -> float:
    """The smallest sigma (to `tolerance` in epsilon, from below) whose `steps` runs at rate q spend at
    most `target_epsilon` at `delta` (Opacus's bisection, with this module's accountant settings)."""
    check_accountant(accountant)
    check_delta(delta)
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"target epsilon {target_epsilon!r} must be a positive finite number")
    check_mechanism(1.0, q, steps)
    if steps == 0:
        raise ValueError("steps=0: no mechanism runs, so no noise multiplier is needed")
    try:
        return _quiet(lambda: get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta, sample_rate=q,
                                                   steps=steps, accountant=accountant, epsilon_tolerance=tolerance,
                                                   **OPTIONS[accountant]))
    except ValueError as e:  # Opacus: "The privacy budget is too low."
        raise ValueError(f"no noise multiplier reaches epsilon={target_epsilon} at delta={delta} with q={q} over "
                         f"{steps} steps ({e}); raise the target epsilon, or lower the sampling rate or the "
                         "number of steps") from None
