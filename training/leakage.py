"""The identity-leakage regularizer from the `leakage_reg:` config: per matcher, its identity bank of the
training people and its threshold, as leakguard.regularizer penalties that leak_step (training.steps)
applies to G's fakes.

    leakage = build_leakage(cfg, dataset, state)   # at start, after a resume: a missing file stops it here

Banks come from the embedding store (training images embedded once per matcher version and dataset
content, cached on disk; a resume or another run finds them). Thresholds come from the matcher's
calibration file (independent people) or, with leakage_reg.threshold_source=training, from the
training set's own pairs.

Under privacy.unit the bank is private (leakguard.regularizer.bank.private_centroids): each person's
centroid plus Gaussian noise of multiplier leakage_reg.bank_noise, drawn once under the run's secret
key (so a resume rebuilds the same bank) and recorded once per matcher in the privacy ledger as the
mechanism `identity_bank` (sensitivity 1, q = 1). G then trains on D's privatized gradients and this
release only, and the run's epsilon counts both.
"""
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leakguard.audit.audit import check_calibration
from leakguard.audit.store import EmbeddingStore
from leakguard.matchers.calibrate import calibration_from_scores, calibration_path, load_calibration, pair_scores
from leakguard.matchers.registry import MatcherConfig, build_matcher
from leakguard.regularizer import IdentityBank, IdentityLeakagePenalty, private_centroids
from training.config import Config
from training.data.training_set import training_images
from training.dp.keys import BANK, IDENTITY_BANK, secret_generator

log = logging.getLogger(__name__)


@dataclass
class Leakage:
    penalties: list               # IdentityLeakagePenalty per matcher
    weight: float
    interval: int
    start_nimg: int
    batch: int                    # fakes per pass

    def due(self, round_idx: int, nimg: int) -> bool:
        return nimg >= self.start_nimg and round_idx % self.interval == 0


def _weights(item: str) -> tuple[str, Path]:
    name, _, weights = item.partition("=")
    path = Path(weights).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"leakage_reg.matchers: {name}'s weights {path} is a folder; name the weights file")
    if not path.is_file():
        raise FileNotFoundError(f"leakage_reg.matchers: {name}'s weights file not found: {path}")
    return name, path


def check_files(cfg: Config) -> list[tuple[str, Path]]:
    """(name, weights) of every regularizer matcher, each file there, and with threshold_source=calibration
    each calibration file there, readable and holding leakage_reg.fmr; [] when the regularizer is off.
    The start (build_leakage) and `leakguard train --dry-run` both check with this."""
    r = cfg.leakage_reg
    if r.weight == 0:
        return []
    named = [_weights(item) for item in r.matchers]
    if r.threshold_source == "calibration":
        for name, weights in named:
            calibration_at_fmr(r.fmr, name, weights)
    return named


def calibration_at_fmr(fmr: float, name: str, weights: Path):
    """The matcher's calibration file, loaded, and its point at `fmr`; errors name the file and the key."""
    path = calibration_path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"leakage_reg.matchers: {name} has no calibration file {path}; calibrate it "
                                f"on people outside the training set (`leakguard matcher calibrate --matcher "
                                f"{name} --weights {weights} --data OTHER_PEOPLE.zip`), or set "
                                f"leakage_reg.threshold_source=training (not under privacy.unit)")
    cal = load_calibration(path)
    try:
        return cal, cal.point(fmr)
    except KeyError as e:
        raise ValueError(f"leakage_reg.fmr={fmr:g}: {e.args[0]}") from None


def threshold(cfg: Config, matcher, weights: Path, emb, ids) -> tuple[float, str]:
    """tau at leakage_reg.fmr, and where it came from."""
    r = cfg.leakage_reg
    if r.threshold_source == "training":
        cal = calibration_from_scores(pair_scores(emb, ids), np.shape(emb), matcher=matcher.version, fmrs=(r.fmr,))
        return cal.point(r.fmr).threshold, "training set (R-R pairs)"
    cal, point = calibration_at_fmr(r.fmr, matcher.name, weights)
    path = calibration_path(weights)
    check_calibration(cal, matcher, f"leakage_reg.matchers: {path}")
    return point.threshold, f"calibration file {path}"


def build_leakage(cfg: Config, dataset, state) -> Leakage | None:
    """None when leakage_reg.weight is 0; otherwise every matcher, bank and threshold, built now."""
    r = cfg.leakage_reg
    if r.weight == 0:
        return None
    named = check_files(cfg)                              # every file checked before any work
    training = training_images(cfg.data, dataset)
    ids = training.identities                             # an error naming the file when there are none
    store = EmbeddingStore(r.cache)
    batch = r.batch or state.batch_gpu
    penalties = []
    for index, (name, weights) in enumerate(named):
        matcher = build_matcher(MatcherConfig(name=name, weights=str(weights), device=str(state.device),
                                              batch_size=max(batch, 64)))
        emb = store.embeddings(training, matcher)                                     # [N, D], cached
        tau, source = threshold(cfg, matcher, weights, emb, ids)
        if state.privacy is None:
            bank = IdentityBank.from_embeddings(emb, ids, r.bank, state.device)
        else:
            units = np.unique(ids)  # the people: the public index of the bank's rows
            bank = private_centroids(emb, ids, units, r.bank_noise, secret_generator(state.privacy.key, BANK, index),
                                     state.device)
        log.info("leakage_reg: %s bank of %d rows (%s%s), tau %.4f at FMR %g from %s", name, len(bank.rows), r.bank,
                 ", private" if bank.private else "", tau, r.fmr, source)
        penalties.append(IdentityLeakagePenalty(matcher, bank, tau, r.margin))
    if state.privacy is not None:
        record_bank(cfg, state, len(penalties))
    return Leakage(penalties, r.weight, r.interval, round(r.start_kimg * 1000), batch)


def record_bank(cfg: Config, state, banks: int) -> None:
    """The private banks' release in the ledger, once per run (a resume finds it in the saved ledger)."""
    p = state.privacy
    if p.ledger.steps(IDENTITY_BANK) == 0:
        p.ledger.record(IDENTITY_BANK, cfg.leakage_reg.bank_noise, 1.0, steps=banks)
        log.info("privacy: %d private identity bank(s) released at sigma %g: epsilon %.3f so far", banks,
                 cfg.leakage_reg.bank_noise, p.ledger.epsilon())
