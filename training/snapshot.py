"""Training checkpoints: the whole TrainState as state dicts, for exact resume.

A snapshot holds G, D and G_ema (in the network-checkpoint record format, so `leakguard generate`
reads them), both optimizers, the augmentation probability and ADA controller, the path-length
mean, images seen, the round counter, the RNG states, the resolved config, the numerics it ran under
(training.numerics) and, under DP, the privacy ledger, the noise multiplier, the secret key and the
privacy record. It is written
atomically (temporary file, fsync, rename): a crash mid-write leaves the previous snapshots intact.
Snapshots are named by images seen, so the newest is the one with the largest number.
"""
import logging
import random
from pathlib import Path

import numpy as np
import torch

from leakguard.atomic import atomic_open
from leakguard.torch_files import NETWORKS_FORMAT, SNAPSHOT_FORMAT, read_checkpoint
from leakguard.privacy import PrivacyLedgerError
from training.config import RESUMABLE_CHANGES, config_differences, from_dict, to_dict
from training.dp.setup import key_from_words, key_words, set_key
from training.numerics import differences, numerics
from training.records import CheckpointError, load_state_dict_exact, network_record, plain
from training.rundir import list_snapshots, remove_stale_temporaries, snapshot_name
from training.state import TrainState

FORMAT = SNAPSHOT_FORMAT
log = logging.getLogger(__name__)

def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
            "python": random.getstate()}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"][:torch.cuda.device_count()])
    n = s["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    py = s["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def save_snapshot(state: TrainState, folder: Path, keep: int = 0) -> Path:
    """Writes `folder/snapshot-<nimg>.pt` atomically and keeps the newest `keep` (0 = all)."""
    data = {
        "format": FORMAT,
        "networks": {name: network_record(getattr(state, name)) for name in ("G", "D", "G_ema")},
        "optimizers": {"G": state.opt_G.state_dict(), "D": state.opt_D.state_dict()},
        "augment_p": state.augment.p.detach().cpu() if state.augment is not None else None,
        "ada": state.ada.state_dict() if state.ada is not None else None,
        "pl_mean": state.pl_mean.detach().cpu(),
        "nimg": state.nimg, "round": state.round, "skipped_steps": state.skipped_steps,
        "rng": rng_state(),
        "config": to_dict(state.cfg),
        "extra": plain({"dataset": state.dataset_info, "dataset_fingerprint": state.dataset_fingerprint,
                        "init": state.init, "numerics": numerics(state.device)}, "extra"),
        "privacy": privacy_state(state),
    }
    path = folder / snapshot_name(state.nimg)
    with atomic_open(path, "wb") as f:
        torch.save(data, f)
    remove_stale_temporaries(folder)
    if keep > 0:
        for old in list_snapshots(folder)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def privacy_state(state: TrainState) -> dict | None:
    p = state.privacy
    if p is None:
        return None
    return plain({"ledger": p.ledger.state_dict(), "sigma": p.sigma, "key": key_words(p.key),
                  "record": p.record(len(p.sampler.table))}, "privacy")


def load_privacy(path: Path, saved: dict | None, state: TrainState) -> None:
    """Continues the saved ledger and key; the ledger is never reset by a resume."""
    p = state.privacy
    if p is None:
        return
    if saved is None:
        raise CheckpointError(f"{path}: cannot resume with privacy.unit={p.unit!r}: the snapshot was trained without "
                              "DP, and what it read of the training data was never accounted")
    try:
        p.ledger.load_state_dict(saved["ledger"], f"{path}: privacy ledger")
    except PrivacyLedgerError as e:
        raise CheckpointError(str(e)) from None
    # With privacy.target_epsilon, sigma was solved for the first run's train.kimg; it stays.
    p.sigma = float(saved["sigma"])
    set_key(p, key_from_words(saved["key"]))


def read_snapshot(path: Path) -> dict:
    return read_checkpoint(path, (FORMAT,), "a LeakGuard training snapshot", missing="resume checkpoint not found",
                           hints={NETWORKS_FORMAT: " (it holds networks only; a run resumes from "
                                                   "runs/<name>-<n>/checkpoints/snapshot-*.pt)"})


def check_resumable(path: Path, cfg, dataset_info: dict) -> dict:
    """The snapshot's data, once its config and dataset are known to fit this run (`leakguard train --dry-run`
    runs this too); a config or dataset that differs is an error listing the keys."""
    data = read_snapshot(path)
    # The saved config must still fit the schema; sections added since it was written take their defaults.
    saved = to_dict(from_dict(data["config"], f"{path}: config"))
    diffs = config_differences(saved, to_dict(cfg))
    private = [d for d in diffs if d.startswith("privacy.")]
    if private:
        raise CheckpointError(f"{path}: cannot resume, the privacy settings differ from the snapshot's in "
                              f"{'; '.join(private)}; a privacy ledger continues only under the settings it was "
                              "started with (start a new run for new settings)")
    if diffs:
        raise CheckpointError(f"{path}: cannot resume, the config differs from the snapshot's in "
                              f"{'; '.join(diffs)} (only {', '.join(RESUMABLE_CHANGES)} may change)")
    saved_data = data["extra"].get("dataset")
    if saved_data != dataset_info:
        raise CheckpointError(f"{path}: cannot resume, the snapshot was trained on {saved_data} "
                              f"but the dataset now is {dataset_info}")
    return data


def load_snapshot(path: Path, state: TrainState) -> None:
    """Restores `state` from a snapshot; a config, dataset or architecture that differs is an error."""
    data = check_resumable(path, state.cfg, state.dataset_info)
    for name in ("G", "D", "G_ema"):
        load_state_dict_exact(getattr(state, name), data["networks"][name]["state_dict"],
                              f"{path}: network {name!r}")
    state.opt_G.load_state_dict(data["optimizers"]["G"])
    state.opt_D.load_state_dict(data["optimizers"]["D"])
    if state.augment is not None and data["augment_p"] is not None:
        state.augment.p.copy_(data["augment_p"])
    if state.ada is not None and data["ada"] is not None:
        state.ada.load_state_dict(data["ada"])
    state.pl_mean.copy_(data["pl_mean"])
    state.nimg, state.round, state.skipped_steps = data["nimg"], data["round"], data["skipped_steps"]
    state.init = data["extra"].get("init")  # a resumed fine-tune keeps the record of where it started
    changed = differences(data["extra"].get("numerics"), numerics(state.device))
    if changed:
        log.warning("%s: resuming under other numerics (%s): the run goes on from the snapshot exactly, but its "
                    "float sums now round otherwise, so from here its path is not bit for bit the one an "
                    "uninterrupted run would take", path, "; ".join(changed))
    load_privacy(path, data.get("privacy"), state)
    set_rng_state(data["rng"])
