"""Private Evolution (Lin et al., ICLR 2024) with a person as the privacy unit, stand-alone: the vote
histogram (every private person casts one vote for the nearest candidate), its Gaussian noise and
threshold, the resampling weights, and the noise planned for an (epsilon, delta). It sees embeddings and
identity ids, never a generator: training.pe renders the candidates and varies their latents."""
from leakguard.pe.histogram import VOTES, vote_histogram
from leakguard.pe.mechanism import MECHANISM, noisy_votes, plan_sigma, resample, survivor_weights

__all__ = ["VOTES", "vote_histogram", "MECHANISM", "noisy_votes", "plan_sigma", "resample", "survivor_weights"]
