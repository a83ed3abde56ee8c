"""Private Evolution (Lin et al., ICLR 2024) with a person as the privacy unit, stand-alone: the vote
histogram (every private person casts one vote for the nearest candidate), its Gaussian noise and
threshold, the resampling weights, and the noise planned for an (epsilon, delta). It sees embeddings and
identity ids, never a generator: training.pe renders the candidates and varies their latents."""
from leakguard.pe.histogram import VOTES, histogram, vote_histogram, voters
from leakguard.pe.mechanism import MECHANISM, noisy_votes, plan_sigma, resample, survivor_weights

__all__ = ["VOTES", "histogram", "vote_histogram", "voters", "MECHANISM", "noisy_votes", "plan_sigma", "resample", "survivor_weights"]
