"""What `leakguard train --dry-run` checks: everything that would stop the start of training, without
building a network or writing a file, so that a cluster job can be validated before it queues.

    lines = check_start(cfg)     # raises what the start would raise, naming the key; else what it found

The checks are the start's own functions (the batch split, the dataset, DP's data-dependent refusals and
sigma's solve, the snapshot to resume, the regularizer's and the evaluation's files), called here too.
"""
import os
from pathlib import Path

from leakguard.audit.images import ImageFiles
from training import evaluate, leakage, rundir
from training.config import Config
from training.data.loader import describe, open_dataset
from training.data.training_set import fingerprint
from training.distributed import pick_device
from training.dp.setup import plan_privacy
from training.init import check_public, read_init
from training.snapshot import check_resumable
from training.state import batch_per_pass, dataset_source


def writable_folder(folder: Path, key: str) -> None:
    """`folder` exists as a writable folder, or can be made: its nearest existing ancestor is one."""
    path = Path(folder).expanduser().absolute()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{key}={folder}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(f"{key}={folder}: {parent} is not writable")
            return


def check_start(cfg: Config, world: int = 1) -> list[str]:
    """Raises what the start of training would raise for `cfg`; returns what was checked, a line each."""
    device = pick_device(cfg.train.device)
    batch_gpu = batch_per_pass(cfg, world)
    lines = [f"device: {device}; {batch_gpu} images per forward pass"]
    dataset = open_dataset(cfg.data, render=False)
    info = describe(dataset)
    lines.append(f"data: {dataset_source(dataset)}: {info['size']} images, {info['resolution']} px, "
                 f"{info['channels']} channels, {info['label_dim']} labels")
    if cfg.train.init is not None and not cfg.resume:
        init = read_init(cfg.train.init)                 # readable, with G, D and G_ema
        check_public(init, cfg.privacy.unit != "none", info, fingerprint(cfg.data, dataset))
        resolution = init.networks["G"].img_resolution
        if resolution != info["resolution"]:
            raise ValueError(f"train.init={cfg.train.init}: its networks are for {resolution} px images, the data is "
                             f"{info['resolution']} px (data.resolution)")
        lines.append(f"init: {init.path} (sha256 {init.sha256[:16]}...); its tensors are matched at the start")
    plan = plan_privacy(cfg, dataset, dataset_source(dataset))
    if plan is not None:
        lines.append(f"privacy: {len(plan.table)} units ({cfg.privacy.unit}), q {plan.q:.4g}, delta {plan.delta:.3g}, "
                     f"sigma {plan.sigma:.4g}, {plan.steps} private D steps planned")
    named = leakage.check_files(cfg)
    lines += [f"leakage_reg: {name} = {weights}" for name, weights in named]
    evaluate.check_files(cfg)
    if cfg.eval.every_kimg is not None:
        lines.append(f"eval: every {cfg.eval.every_kimg:g} kimg, matchers {', '.join(cfg.eval.matchers) or '-'}, "
                     f"features {', '.join(cfg.eval.fidelity) or '-'}")
    if (named or (cfg.eval.every_kimg is not None and cfg.eval.matchers)) and cfg.data.path is not None:
        ImageFiles(cfg.data.path).identities  # the audit's people: an error naming the file when there are none
    if cfg.resume:
        snapshot = rundir.resolve_resume(cfg.resume, cfg.run_dir, cfg.name)
        data = check_resumable(snapshot, cfg, info)
        lines.append(f"resume: {snapshot} at {data['nimg'] / 1000:g} kimg")
    writable_folder(Path(cfg.run_dir), "run_dir")
    return lines
