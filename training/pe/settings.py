"""What one Private Evolution run is given, checked before anything is read or written: every error names
the option and the value."""
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

from leakguard.pe import VOTES
from leakguard.privacy.accountants import (ACCOUNTANTS, MAX_SIGMA, MAX_TARGET_EPSILON, check_accountant,
                                           check_delta)

MAX_POPULATION = 1_000_000   # candidates per iteration; more is a typo (each one is rendered and embedded)
MAX_ITERATIONS = 10_000


@dataclass
class PESettings:
    generator: str                       # the public generator: a LeakGuard checkpoint or an official StyleGAN2 pkl
    data: str                            # the private people: a dataset zip or folder whose dataset.json has identities
    embedding: str                       # where the people vote: a matcher or fidelity extractor name
    embedding_path: Optional[str] = None  # its weights (None: its default)
    epsilon: Optional[float] = None      # target epsilon per person at delta (or give sigma)
    sigma: Optional[float] = None        # noise multiplier of each histogram (or give epsilon)
    delta: Optional[float] = None        # None: min(1e-5, 0.1 / people), as DP training
    accountant: str = "rdp"              # rdp | prv
    iterations: int = 10                 # T noisy histograms
    population: int = 1000               # M candidates voted on per iteration
    count: Optional[int] = None          # images of the final set (None: population)
    threshold: float = 2.0               # a candidate's noisy votes below threshold x sigma count 0 (Lin et al.'s H)
    vote: str = "centroid"               # centroid (a person's mean embedding votes 1) | images (each of k votes 1/k)
    variation: tuple = (0.5, 0.05)       # W-space step of the variations: from the first iteration's to the last's
    truncation_psi: float = 1.0          # of the random latents (public)
    seed: int = 0                        # public randomness: initial latents, variations, resampling
    secret_seed: Optional[int] = None    # None: drawn from the OS (secret); a known seed voids the guarantee
    device: str = "cpu"
    batch: int = 64                      # images per forward pass (rendering and embedding)
    cache: Optional[str] = None          # embedding cache folder (None: ~/.cache/leakguard/embeddings)
    eval_matchers: list = field(default_factory=list)   # NAME or NAME=WEIGHTS: leak audit of every iteration
    eval_features: list = field(default_factory=list)   # NAME or NAME=PATH: FD/KID/precision/recall per iteration
    eval_fmrs: tuple = (0.001,)
    eval_members: Optional[str] = None      # held-out photos of trained people: membership AUC per iteration
    eval_nonmembers: Optional[str] = None   # photos of people never trained on (with eval_members)

    # What must be the same on a resume (the rest, like the device or the batch, may change).
    def identity(self) -> dict:
        keep = {f.name for f in fields(self)} - {"device", "batch", "cache", "eval_matchers", "eval_features",
                                                  "eval_fmrs", "eval_members", "eval_nonmembers", "secret_seed"}
        return {k: v for k, v in plain(self).items() if k in keep}

    def final_count(self) -> int:
        return self.population if self.count is None else self.count


def plain(s: PESettings) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(s).items()}


def _whole(value, option: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{option} {value!r}: expected a whole number in [{low:,}, {high:,}]")


def check_settings(s: PESettings) -> None:
    """Refuses (ValueError naming the option) what cannot run, before any file is read."""
    if (s.epsilon is None) == (s.sigma is None):
        raise ValueError("--epsilon or --sigma: give exactly one (the target epsilon per person, or the noise "
                         "multiplier of each histogram)")
    if s.epsilon is not None and not (isinstance(s.epsilon, (int, float)) and math.isfinite(s.epsilon)
                                      and 0 < s.epsilon <= MAX_TARGET_EPSILON):
        raise ValueError(f"--epsilon {s.epsilon!r}: expected a number in (0, {MAX_TARGET_EPSILON}]")
    if s.sigma is not None and not (isinstance(s.sigma, (int, float)) and math.isfinite(s.sigma)
                                    and 0 < s.sigma <= MAX_SIGMA):
        raise ValueError(f"--sigma {s.sigma!r}: expected a noise multiplier in (0, {MAX_SIGMA:g}]")
    if s.delta is not None:
        try:
            check_delta(s.delta)
        except ValueError:
            raise ValueError(f"--delta {s.delta!r}: expected a number in (0, 1), below 1 / people") from None
    try:
        check_accountant(s.accountant)
    except ValueError:
        raise ValueError(f"--accountant {s.accountant!r}: valid: {', '.join(ACCOUNTANTS)}") from None
    _whole(s.iterations, "--iterations", 1, MAX_ITERATIONS)
    _whole(s.population, "--population", 2, MAX_POPULATION)
    if s.count is not None:
        _whole(s.count, "--count", 1, MAX_POPULATION)
    if not (isinstance(s.threshold, (int, float)) and math.isfinite(s.threshold) and s.threshold >= 0):
        raise ValueError(f"--threshold {s.threshold!r}: expected a number >= 0 (in units of sigma)")
    if s.vote not in VOTES:
        raise ValueError(f"--vote {s.vote!r}: valid: {', '.join(VOTES)}")
    if len(s.variation) != 2 or not all(isinstance(v, (int, float)) and 0 < v <= 1 for v in s.variation):
        raise ValueError(f"--variation {s.variation!r}: expected two steps in (0, 1], the first iteration's and the "
                         "last's (e.g. 0.5 0.05)")
    if not (isinstance(s.truncation_psi, (int, float)) and 0 < s.truncation_psi <= 2):
        raise ValueError(f"--trunc {s.truncation_psi!r}: expected a truncation psi in (0, 2] (1 = none)")
    _whole(s.batch, "--batch", 1, 1 << 16)
    _whole(s.seed, "--seed", 0, 2 ** 63 - 1)
    if s.secret_seed is not None:
        _whole(s.secret_seed, "--secret-seed", 0, 2 ** 128 - 1)
    for fmr in s.eval_fmrs:
        if not (isinstance(fmr, (int, float)) and 0 < fmr < 1):
            raise ValueError(f"--fmr {fmr!r}: a false-match rate must be in (0, 1), e.g. 1e-3")
    if (s.eval_members is None) != (s.eval_nonmembers is None):
        raise ValueError("--eval-members and --eval-nonmembers: give both (the membership attack compares them) "
                         "or neither")
    for option, path in (("--generator", s.generator), ("--data", s.data), ("--eval-members", s.eval_members),
                         ("--eval-nonmembers", s.eval_nonmembers)):
        if path is not None and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"{option} {path}: not found")
    if Path(s.generator).expanduser().is_dir():
        raise IsADirectoryError(f"--generator {s.generator}: is a folder; name the network file")
