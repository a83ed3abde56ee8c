"""Training on a DP image set (Private Evolution's images.zip, whose dataset.json carries its privacy record):
post-processing. A run without privacy.unit whose data is such a set reads no private data but that set, so its
networks carry the set's (epsilon, delta), and release.pt says why; the init it starts from is assumed public,
as under DP training. Under privacy.unit the run's own DP-SGD record applies instead (the set's is not carried).

    record = image_set_record(cfg)              # None unless data.path carries a record and the run is not DP
    release = carried_record(record, cfg, init) # what release.pt states at the end
"""
import logging

from leakguard.privacy.record import read_dataset_record
from training.config import Config
from training.dp.setup import PUBLIC_INIT

log = logging.getLogger("leakguard.train")

COVERS = ["G, G_ema, D and both optimizers' states (release.pt, snapshots): trained only on the DP image set "
          "(data.path) and public randomness, so post-processing of its release",
          "images/ (fake grids and the grid of the image set's images), stats.jsonl, TensorBoard, config.yaml"]
COVERED_FILES = ["release.pt", "checkpoints/snapshot-*.pt", "images/*.png", "stats.jsonl", "events.out.tfevents.*",
                 "config.yaml"]
NOT_COVERED = ["eval.jsonl and report.html where eval.members or eval.nonmembers name images outside the image set",
               "what the image set's own record leaves out (its 'source' below)"]
NOT_COVERED_FILES = ["eval.jsonl", "report.html"]


def image_set_record(cfg: Config) -> dict | None:
    """The privacy record data.path carries, when this run is its post-processing (no privacy.unit)."""
    if cfg.data.path is None:
        return None
    record = read_dataset_record(cfg.data.path)
    if record is not None and cfg.privacy.unit != "none":
        log.info("data.path %s carries a privacy record (a DP image set); this run's own DP-SGD record applies to "
                 "its release instead", cfg.data.path)
        return None
    return record


def carried_record(record: dict, cfg: Config, init: dict | None) -> dict:
    """release.pt's privacy record: the image set's (epsilon, delta) and unit, with what this run adds."""
    keep = ("unit", "epsilon", "delta", "accountant", "opacus_version", "sigma", "q", "steps", "units", "mechanisms",
            "secret_seed")
    return {**{k: record[k] for k in keep if k in record},
            "method": f"post-processing: trained only on the DP image set {cfg.data.path} "
                      f"({record.get('method', 'DP')})",
            "source": record, "covers": COVERS, "not_covered": NOT_COVERED, "covered_files": COVERED_FILES,
            "not_covered_files": NOT_COVERED_FILES, "trained_parameters": 0,
            "init": None if init is None else {**init, "assumption": PUBLIC_INIT}}
