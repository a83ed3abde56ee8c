"""What a private run's secret key seeds, and what its privacy ledger calls each release: every random
stream under the key and every mechanism name, in one place.

The key (128 bits, drawn from the OS unless privacy.secret_seed is given) seeds numpy's SeedSequence
with [key, STREAM, ...]; the streams must differ, or two draws would be the same numbers. Public
randomness (latents, the networks' noise inputs, augmentation) comes from the train.seed streams of
training.steps instead and is not secret.
"""
import numpy as np
import torch

# Random streams under the secret key
SAMPLE = 1   # which units each private D step includes (training.dp.units.PoissonSampler.units)
PICK = 2     # which k images of a sampled person (PoissonSampler.images)
NOISE = 3    # the Gaussian noise of private D step t (training.steps.dp_d_step)
BANK = 4     # the private identity bank's noise, per matcher (training.leakage)
PE_NOISE = 5  # the Gaussian noise of Private Evolution's histogram t (training.pe.run)

# The privacy ledger's mechanism names
D_STEP = "dp_d_step"            # one private D step: Poisson-subsampled Gaussian (sigma, q)
IDENTITY_BANK = "identity_bank"  # one private identity bank per matcher: Gaussian (bank_noise, q = 1)


def secret_generator(key: int, stream: int, index: int, device="cpu") -> torch.Generator:
    """A torch generator for draw `index` of `stream` under the secret key."""
    seed = int(np.random.SeedSequence([key, stream, index]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(seed)
