"""Train a StyleGAN2 on SynthFaces or an image dataset (folder or zip).

The config is the typed schema (training/config.py) with a preset merged over it and dot-list
overrides on top; the run folder runs/<name>-<n>/ gets config.yaml, TensorBoard events,
stats.jsonl, image grids and checkpoints.

examples:
  leakguard train --config configs/synthfaces32.yaml
  leakguard train --config configs/celeba64.yaml data.path=celeba64.zip train.kimg=5000
  leakguard train --config configs/synthfaces32.yaml --resume auto
  torchrun --nproc_per_node=4 -m training.cli train --config configs/ffhq256.yaml data.path=ffhq256.zip
"""
import argparse
import logging
import os
from pathlib import Path

from leakguard import run_files
from training import distributed, rundir
from training.config import load_config, to_yaml

log = logging.getLogger("leakguard.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML preset merged over the schema (configs/*.yaml)")
    p.add_argument("--resume", metavar="PATH", help="snapshot file, run folder, or 'auto' (same as resume=...)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and check everything the start checks (files, data, DP, the "
                        "snapshot), building no network and writing nothing; exit 2 naming what would stop it")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.kimg=200")


def run(args) -> None:
    overrides = list(args.overrides) + ([f"resume={args.resume}"] if args.resume else [])
    cfg = load_config(args.config, overrides)
    if args.dry_run:
        from training.preflight import check_start
        print(to_yaml(cfg), end="")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        for line in check_start(cfg, world):
            print(f"# ok: {line}")
        return
    # The loop pulls in TensorBoard and the data stack; other subcommands should not pay for that.
    from training import loop
    dist = distributed.init(cfg.train.device)
    try:
        resume = rundir.resolve_resume(cfg.resume, cfg.run_dir, cfg.name) if cfg.resume else None
        run_dir, created, root_was_there = None, False, Path(cfg.run_dir).exists()
        if dist.is_main:
            run_dir = resume and rundir.run_dir_of(resume)
            if not run_dir:
                run_dir, created = rundir.new_run_dir(cfg.run_dir, cfg.name), True
            print(f"run folder: {run_dir}   (TensorBoard: tensorboard --logdir {run_dir})", flush=True)
        try:
            state = loop.train(cfg, dist, run_dir, resume)
        except BaseException:
            if created and not any(run_dir.iterdir()):  # a start that was refused leaves no empty folder
                run_dir.rmdir()
                if not root_was_there and not any(run_dir.parent.iterdir()):
                    run_dir.parent.rmdir()               # nor the run_dir it made for it
            raise
        if dist.is_main:
            print(f"done: {state.nimg / 1000:g} kimg; checkpoints in {run_dir / run_files.CHECKPOINTS}, "
                  f"fake grids in {run_dir / 'images'}", flush=True)
    finally:
        distributed.shutdown()
