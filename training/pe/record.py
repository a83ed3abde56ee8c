"""The privacy record of a Private Evolution release, and what its (epsilon, delta) covers."""
from leakguard.privacy import PrivacyLedger
from leakguard.pe.mechanism import MECHANISM

COVERS = ["the final latents and their images (release.pt, latents.pt, images.zip, grid.png): chosen by T noisy "
          "vote histograms, one vote per person, and public randomness; post-processing of the histograms",
          "pe.jsonl: per iteration the epsilon spent, the survivors and the kept noisy votes (read from the noisy "
          "histogram only)",
          "settings.json (the settings, chosen without looking at the data) and record.json (this record)"]
COVERED_FILES = ["release.pt", "latents.pt", "images.zip", "grid.png", "pe.jsonl", "settings.json", "record.json"]
NOT_COVERED = [
    "the number of people and the dataset's size (treated as public, as the histogram's sensitivity does)",
    "the secret seed in checkpoints/iter-*.pt (the per-iteration state for resuming): publish release.pt, latents.pt "
    "and images.zip, never a checkpoint",
    "the evaluation of each iteration (eval.jsonl): leak rates and fidelity computed from the private images, "
    "the data holder's view",
    "anything computed from the private images after the run or outside the ledger (audit reports)",
    "the embedding cache (--cache): the private images' embeddings, private data to keep with the dataset",
    "the noise comes from torch's pseudo-random generator seeded by the secret key, not a cryptographically "
    "secure one, and floating-point Gaussian sampling has known attacks (Mironov 2012)",
]
NOT_COVERED_FILES = ["checkpoints/iter-*.pt", "eval.jsonl"]
PUBLIC_GENERATOR = ("the guarantee assumes that this generator never saw the private data: it was trained on public "
                    "data only, and what it learned is not counted in this epsilon")
SENSITIVITY = ("each person casts one vote in total (their embeddings' centroid votes 1, or each of their k images "
               "1/k), so adding or removing a person moves the histogram by at most 1 in L2; each histogram gets "
               "N(0, sigma^2) per candidate: a Gaussian mechanism (q = 1), composed over the iterations")


def pe_record(ledger: PrivacyLedger, sigma: float, people: int, known_key: bool, generator: dict,
              vote: str) -> dict:
    """The record release.pt carries (leakguard.privacy.record reads it): plain data."""
    return {"unit": "identity", **ledger.record_summary(), "sigma": sigma, "q": 1.0, "units": people,
            "method": f"Private Evolution (Lin et al. 2024), one vote per person ({vote}), mechanism {MECHANISM}",
            "sensitivity": SENSITIVITY,
            "secret_seed": "given on the command line: anyone who has it can undo the noise, so the guarantee does "
                           "not hold" if known_key else "drawn from the OS",
            "covers": COVERS, "not_covered": NOT_COVERED, "covered_files": COVERED_FILES,
            "not_covered_files": NOT_COVERED_FILES, "trained_parameters": 0,
            "init": {**generator, "assumption": PUBLIC_GENERATOR}}
