"""The Gaussian mechanism on the vote histogram, and what Private Evolution does with its output.

    sigma = plan_sigma(epsilon, iterations, delta)       # noise for T releases of the histogram
    noisy = noisy_votes(h, sigma, secret_generator)      # h + N(0, sigma^2) per candidate: the release
    w = survivor_weights(noisy, threshold)               # votes below the threshold count 0 (Lin et al.)
    picks = resample(w, count, public_generator)         # the next population, drawn by the weights

The histogram's L2 sensitivity is 1 (a person's vote sums to 1: histogram.py), so N(0, sigma^2) per
candidate is the Gaussian mechanism with noise multiplier sigma, and T iterations compose as T of them:
in the ledger's terms a Poisson-subsampled Gaussian with q = 1, run T times. Everything after
`noisy_votes` reads only its output, so it is post-processing and spends nothing.
"""
import torch

from leakguard.privacy.accountants import epsilon, noise_multiplier

MECHANISM = "pe_vote"    # the ledger's name for one noisy histogram of Private Evolution


def plan_sigma(target_epsilon: float, iterations: int, delta: float, accountant: str = "rdp") -> float:
    """The smallest sigma (to 0.01 in epsilon) for which `iterations` noisy histograms spend at most
    target_epsilon at delta."""
    return noise_multiplier(target_epsilon, 1.0, iterations, delta, accountant)


def planned_epsilon(sigma: float, iterations: int, delta: float, accountant: str = "rdp") -> float:
    return epsilon([(sigma, 1.0, iterations)], delta, accountant)


def noisy_votes(hist: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """hist [M] + N(0, sigma^2) per entry, float64; the generator's seed must stay secret."""
    if hist.ndim != 1:
        raise ValueError(f"noisy_votes: the histogram must be [M], got shape {tuple(hist.shape)}")
    noise = torch.randn(hist.shape, generator=generator, dtype=torch.float64)
    return hist.double() + sigma * noise


def survivor_weights(noisy: torch.Tensor, threshold: float) -> torch.Tensor:
    """The noisy votes with every entry below `threshold` set to 0 (no negative weights either)."""
    return torch.where(noisy >= threshold, noisy, torch.zeros_like(noisy)).clamp(min=0)


def resample(weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor | None:
    """[count] candidate indices drawn with replacement in proportion to `weights`; None when nothing survived
    (every weight 0), so the caller decides what an empty release means."""
    if float(weights.sum()) <= 0:
        return None
    return torch.multinomial(weights.float(), count, replacement=True, generator=generator)
