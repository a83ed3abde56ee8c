"""train.init: start a run from pretrained networks instead of random ones — a public model to fine-tune, so
that DP training (or the leakage regularizer) has faces to start from.

    init = read_init(cfg.train.init)                  # the networks, the file's SHA-256, what it was trained on
    check_public(init, cfg, dataset_info, fingerprint) # under DP: refuses an init that saw the private data
    apply_init(state, init)                           # G, D, G_ema (w_avg with G); optimizers stay fresh

G, D and G_ema take the file's weights (an architecture that differs is refused naming the keys); the
optimizers, images seen and every other state start fresh. It is not a resume: a resumed fine-tune takes
its weights from the snapshot and keeps the init's record. The path and SHA-256 go into config.yaml's header
and every checkpoint; under DP the privacy record names the init and the assumption the guarantee rests
on: that the init never saw the private data.
"""
from dataclasses import dataclass
from pathlib import Path

from leakguard.torch_files import file_sha256
from training.checkpoint import load_any
from training.records import CheckpointError, load_state_dict_exact

@dataclass
class Init:
    path: Path
    sha256: str
    networks: dict                # G, D, G_ema as modules
    dataset: dict | None          # what the init was trained on, as its checkpoint records it (None: not recorded)
    fingerprint: str | None       # its training data's content fingerprint, where recorded
    private: bool                 # the init is itself a private run's release or snapshot

    def record(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256}


def read_init(path: str) -> Init:
    """train.init's networks and what its file says about their training; errors name the key."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise IsADirectoryError(f"train.init={path} is a folder; name a network file (a LeakGuard checkpoint, "
                                "snapshot or release.pt, or an official StyleGAN2 pkl)")
    if not file.is_file():
        raise FileNotFoundError(f"train.init={path}: no such file")
    try:
        nets = load_any(file)
    except CheckpointError as e:
        raise CheckpointError(f"train.init: {e}") from None
    missing = [name for name in ("G", "D", "G_ema") if name not in nets]
    if missing:
        raise CheckpointError(f"train.init={path}: holds no {', '.join(missing)}; a fine-tune starts G, D and G_ema "
                              "from the file, so it needs all three")
    extra = nets.get("extra") or {}
    dataset, fingerprint = extra.get("dataset"), extra.get("dataset_fingerprint")
    official = extra.get("training_set_kwargs")
    if dataset is None and isinstance(official, dict) and official.get("path"):
        dataset = {"name": Path(str(official["path"])).stem, "resolution": official.get("resolution")}
    private = extra.get("privacy") is not None or (extra.get("config") or {}).get("privacy", {}).get("unit",
                                                                                                     "none") != "none"
    return Init(file, file_sha256(file), {k: nets[k] for k in ("G", "D", "G_ema")}, dataset, fingerprint, private)


def same_data(init: Init, dataset_info: dict, fingerprint: str | None) -> bool:
    """Whether the init's recorded training data is this run's: by content where both fingerprints are known,
    else by name and resolution (and size where recorded)."""
    if init.fingerprint is not None and fingerprint is not None:
        return init.fingerprint == fingerprint
    if init.dataset is None:
        return False
    keys = [k for k in ("name", "resolution", "size") if init.dataset.get(k) is not None]
    return bool(keys) and all(init.dataset[k] == dataset_info.get(k) for k in keys)


def check_public(init: Init, private_run: bool, dataset_info: dict, fingerprint: str | None) -> None:
    """Under DP the init must be public: one trained on this run's private data, privately or not, is refused."""
    if private_run and same_data(init, dataset_info, fingerprint):
        how = "a private run of" if init.private else "trained on"
        raise ValueError(f"train.init={init.path}: {how} this run's private data ({dataset_info.get('name')}); a DP "
                         f"fine-tune must start from networks that never saw it (its epsilon does not count what "
                         f"the init learned). Start from a model trained on public data, or continue that run with "
                         f"--resume, whose ledger goes on")


def apply_init(state, init: Init) -> None:
    """G, D and G_ema (with w_avg, a buffer of G's mapping) take the init's weights; nothing else changes."""
    for name in ("G", "D", "G_ema"):
        load_state_dict_exact(getattr(state, name), init.networks[name].state_dict(),
                              f"train.init={init.path}: network {name!r} (an architecture that differs from the config's)")
    state.init = init.record()
