"""Where LeakGuard caches what it computes once (embeddings, fidelity features, feature networks): under
$LEAKGUARD_CACHE, else ~/.cache/leakguard. Read when asked, not at import, so a process that sets the
variable after importing LeakGuard (a test, a launcher) is obeyed."""
import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("LEAKGUARD_CACHE", "~/.cache/leakguard")).expanduser()


def embeddings_root() -> Path:
    """The embedding store's folder (leakguard.audit.store)."""
    return cache_root() / "embeddings"


def fidelity_root() -> Path:
    """Feature extractors' weights and feature nets (leakguard.fidelity.extractors, SynthFaces' feature net)."""
    return cache_root() / "fidelity"
