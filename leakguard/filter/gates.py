"""One release gate per matcher: the training identities under that matcher, and the threshold at the
chosen FMR with its provenance. A generated face fails a gate when its best score over the training
identities (the max over a person's images, as the audit scores it) reaches the threshold.

    gate = build_gate(matcher, training, store, fmr=1e-3, calibration=(cal, "calibration file synth.pt..."))
    best = gate.score(images)           # [n] best scores, identities and nearest training images

Thresholds come from the matcher's calibration file when there is one (independent people), else
from the training set's own genuine and impostor pairs, as in the audit (leakguard.audit.audit). A
filtering gate whose FMR the source cannot support (too few impostor pairs or people; the rule of
leakguard.matchers.calibrate) is refused: a filter with a threshold nobody can vouch for removes an
unknown share of the leaks. A checking gate (a matcher that only reports on the kept set) records
the support instead.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from leakguard.audit.audit import best_matches, check_calibration
from leakguard.audit.metrics import chance_bounds
from leakguard.audit.store import EmbeddingStore
from leakguard.matchers.base import Matcher
from leakguard.matchers.calibrate import Calibration, calibration_from_scores, pair_scores, why_unsupported
from leakguard.matchers.threshold_ci import with_threshold_intervals


@dataclass
class Scores:
    """The best training identity of each of n faces under one matcher."""
    best: np.ndarray        # float32 [n] best cosine over the training identities
    identity: np.ndarray    # int64 [n] that identity
    nearest: np.ndarray     # int64 [n] index of the nearest training image
    embeddings: torch.Tensor  # [n, D] unit rows, on the matcher's device


@dataclass
class Gate:
    matcher: Matcher
    train: torch.Tensor     # [N, D] unit embeddings of the training images, on the matcher's device
    train_ids: np.ndarray   # int64 [N]
    threshold: float        # a face matches when its score >= threshold
    provenance: dict        # fmr, fmr_observed, source, pairs, people, interval, support, chance band
    calibration: Optional[Calibration] = None  # where the threshold came from

    @property
    def name(self) -> str:
        return self.matcher.name

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[n, D] unit embeddings of uint8 [n, 3, H, W] images, on the matcher's device."""
        return torch.cat([self.matcher.embed(b) for b in images.split(self.matcher.batch_size)]).to(self.train.device)

    def search(self, emb: torch.Tensor) -> Scores:
        best, identity, nearest = best_matches(emb, self.train, self.train_ids)
        return Scores(best=best, identity=identity.astype(np.int64), nearest=nearest.astype(np.int64), embeddings=emb)


def threshold_provenance(cal: Calibration, fmr: float, source: str, identities: int, images: int) -> dict:
    """The threshold at `fmr` and what a reader needs to trust it (the audit's leakage-row fields)."""
    try:
        p = cal.point(fmr)
    except KeyError as e:
        raise ValueError(f"--fmr {fmr:g}: {source}: {e.args[0]}") from None
    why = why_unsupported(fmr, cal.impostor.pairs_used, cal.num_identities)
    chance = chance_bounds(p.fmr_observed, identities, images)
    return {"fmr": fmr, "fmr_observed": p.fmr_observed, "threshold": p.threshold, "threshold_source": source,
            "threshold_ci": p.threshold_ci, "calibration_identities": cal.num_identities,
            "genuine_pairs": cal.genuine.pairs_used, "impostor_pairs": cal.impostor.pairs_used,
            "supported": not why, "why_unsupported": why, "tar": p.tar,
            "chance_rate_bounds": [chance[0], chance[1]]}


def build_gate(matcher: Matcher, training, store: EmbeddingStore, fmr: float,
               calibration: Optional[tuple[Calibration, str]] = None, require_support: bool = True,
               seed: int = 0) -> Gate:
    """The gate of `matcher` at `fmr` (module doc); `calibration`: (Calibration, where it came from)."""
    train_ids = np.asarray(training.identities, np.int64)
    train = np.array(store.embeddings(training, matcher))                                      # [N, D]
    if calibration is not None:
        cal, source = calibration
        check_calibration(cal, matcher, source)
    else:
        rr = calibration_from_scores(pair_scores(train, train_ids, seed=seed), train.shape, matcher=matcher.version,
                                     fmrs=(fmr,), seed=seed)
        cal, source = with_threshold_intervals(rr, train, train_ids, seed=seed), "training set (R-R pairs)"
    provenance = threshold_provenance(cal, fmr, source, len(np.unique(train_ids)), len(train_ids))
    if require_support and not provenance["supported"]:
        raise ValueError(f"--fmr {fmr:g} for {matcher.name}: {provenance['why_unsupported']} in its threshold "
                         f"source ({source}); choose a larger --fmr, or calibrate {matcher.name} on more people "
                         f"with `leakguard matcher calibrate`")
    return Gate(matcher=matcher, train=torch.from_numpy(train).to(matcher.device), train_ids=train_ids,
                threshold=float(provenance["threshold"]), provenance=provenance, calibration=cal)
