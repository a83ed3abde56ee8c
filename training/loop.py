"""The training loop: build the run (a TrainState, fresh or resumed, with its data, privacy, leakage
penalty and evaluator, every refusal before anything is written), then rounds until train.kimg, with
ticks (stats, progress), fixed-seed image grids and snapshots on their schedules.

    rounds:   steps.train_round  (G, path length, D, R1, EMA, ADA)
    ticks:    Reporter.flush -> TensorBoard + stats.jsonl, progress bar
    images:   G_ema on fixed latents -> images/fakes-*.png + TensorBoard
    snapshot: snapshot.save_snapshot -> checkpoints/snapshot-*.pt
    eval:     with eval.every_kimg, training.evaluate: leakage, membership and fidelity -> eval.jsonl
    privacy:  under privacy.unit, Privacy/epsilon every tick, no reals.png, a stop before the step that
              would pass privacy.target_epsilon, and release.pt (networks + privacy record) at the end
    signals:  SIGINT or SIGTERM finish the round, write a snapshot and raise training.stop.TrainingStopped
"""
import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from leakguard import run_files
from leakguard.atomic import write_text
from leakguard.folder_lock import FolderLock
from training import rundir
from training.checkpoint import save_networks
from training.config import Config, to_yaml
from training.data.images import make_grid, save_png, to_uint8
from training.data.loader import ChunkStream, describe, open_dataset
from training.data.training_set import fingerprint
from training.distributed import Dist
from training.dp.audit_hooks import AuditHooks
from training.dp.image_set import carried_record, image_set_record
from training.dp.per_unit import trainable
from training.dp.stream import UnitStream
from training.evaluate import Evaluator
from training.init import apply_init, check_public, read_init
from training.leakage import build_leakage
from training.report import Reporter
from training.snapshot import load_snapshot, save_snapshot
from training.state import TrainState, build_state
from training.steps import stream_seed, train_round
from training.stop import StopSignals, TrainingStopped

log = logging.getLogger("leakguard.train")


def crossed(before: int, after: int, every_kimg: float) -> bool:
    """Whether images seen went past a multiple of `every_kimg` thousand."""
    every = max(int(round(every_kimg * 1000)), 1)
    return after // every > before // every


def grid_latents(state: TrainState) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed latents of the image grid: the same for a run and for its resumptions."""
    g = torch.Generator().manual_seed(stream_seed(state.cfg.train.seed, 0, "grid", 0))
    n = state.cfg.train.grid_images
    z = torch.randn([n, state.G.z_dim], generator=g)
    c = state.labels.cpu()[torch.randint(len(state.labels), [n], generator=g)]
    return z.to(state.device), c.to(state.device)


@torch.no_grad()
def render_grid(state: TrainState, z: torch.Tensor, c: torch.Tensor) -> np.ndarray:
    imgs = [state.G_ema(zz, cc, noise_mode="const")
            for zz, cc in zip(z.split(state.batch_gpu), c.split(state.batch_gpu))]
    return make_grid(to_uint8(torch.cat(imgs)))


def save_grid(state: TrainState, run_dir: Path, latents) -> None:
    grid = render_grid(state, *latents)
    save_png(grid, run_dir / run_files.IMAGES / f"fakes-{state.nimg:010d}.png")
    state.reporter.image("fakes", grid, state.nimg)


def save_reals(dataset, run_dir: Path, n: int) -> None:
    idx = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int)
    reals = np.stack([dataset[int(i)][0].transpose(1, 2, 0) for i in idx])
    save_png(make_grid(reals), run_dir / run_files.IMAGES / "reals.png")


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def tick(state: TrainState, bar, sec_per_kimg: float) -> dict:
    extra = {"Progress/kimg": state.nimg / 1000, "Timing/sec_per_kimg": sec_per_kimg,
             "Resources/peak_mem_gb": peak_memory_gb(state.device)}
    if state.augment is not None:
        extra["Progress/augment_p"] = float(state.augment.p)
    if state.ada is not None and state.ada.rt is not None:
        extra["Progress/ada_rt"] = float(state.ada.rt)
    if state.privacy is not None:
        extra["Privacy/epsilon"] = state.privacy.ledger.epsilon()
        extra["Privacy/d_steps"] = float(state.privacy.ledger.steps())
    stats = state.reporter.flush(state.nimg, extra)
    if bar is not None and stats:
        short = {"G": "Loss/G/loss", "D": "Loss/D/loss", "r1": "Loss/r1_penalty", "pl": "Loss/pl_penalty",
                 "p": "Progress/augment_p"}
        bar.set_postfix({k: f"{stats[v]:.3g}" for k, v in short.items() if v in stats} |
                        {"s/kimg": f"{sec_per_kimg:.1f}"}, refresh=False)
    return stats


def real_stream(state: TrainState, dataset):
    """Per round, the real images: chunks of the round's batch, or under DP the sampled units of
    each private D step."""
    cfg, dist, p = state.cfg, state.dist, state.privacy
    if p is None:
        return ChunkStream(dataset, cfg.train.batch, state.batch_gpu, dist.rank, dist.world, cfg.train.seed,
                           state.round, dist.device, cfg.data.workers)
    return UnitStream(dataset, p.sampler, p.k, p.units_per_chunk, cfg.privacy.d_steps_per_g, dist.rank, dist.world,
                      state.round, dist.device, cfg.data.workers)


def budget_spent(state: TrainState) -> bool:
    """Under privacy.target_epsilon: whether the next round's D steps would pass it."""
    p = state.privacy
    if p is None or p.steps_allowed() is None:
        return False
    return p.ledger.steps() + state.cfg.privacy.d_steps_per_g > p.steps_allowed()


def save_release(state: TrainState, run_dir: Path, record: dict) -> None:
    """release.pt: the networks and their privacy record, without the secret key a snapshot holds."""
    save_networks(run_dir / run_files.RELEASE, {"G": state.G, "D": state.D, "G_ema": state.G_ema},
                  extra={"privacy": record, "nimg": state.nimg, "dataset": state.dataset_info,
                         "init": state.init})   # no content fingerprint: a digest of the private files' names
                                                # and CRCs would let anyone confirm a guessed dataset exactly


@dataclass
class Run:
    """A run built and checked, before anything is written."""
    state: TrainState
    dataset: object                   # training.data.loader.open_dataset(cfg.data)
    run_dir: Path | None              # None on ranks other than 0
    evaluator: Evaluator | None       # rank 0 with eval.every_kimg


def build_run(cfg: Config, dist: Dist, run_dir: Path | None, resume: Path | None = None,
              audit: AuditHooks | None = None) -> Run:
    """Everything that can refuse the run (config, data, the snapshot, the leakage penalty's and the
    evaluation's files) is checked here, before anything is written: a refused resume leaves the run
    folder exactly as it was. `audit`: a DP audit's hooks in the private D step (training.dpaudit)."""
    main = dist.is_main
    dataset = open_dataset(cfg.data)
    state = build_state(cfg, dataset, dist, Reporter(run_dir if main else None))  # its files open at the first write
    state.dataset_info = describe(dataset)
    state.dataset_fingerprint = fingerprint(cfg.data, dataset)
    state.image_set_record = image_set_record(cfg)
    if cfg.train.init is not None and resume is None:   # a resume takes its weights (and init record) from the snapshot
        init = read_init(cfg.train.init)
        check_public(init, state.privacy is not None, state.dataset_info, state.dataset_fingerprint)
        apply_init(state, init)
    if resume is not None:
        load_snapshot(resume, state)
    if state.privacy is not None:
        state.privacy.init = state.init
        state.privacy.trained_parameters = sum(p.numel() for _, p in trainable(state.D))
    state.leakage = build_leakage(cfg, dataset, state)  # after the resume: the private bank's ledger entry is there
    if audit is not None:
        if state.privacy is None or dist.world > 1:
            raise ValueError("a DP audit's hooks (gradient canaries, a skipped noise) need a DP run (privacy.unit) "
                             "in one process")
        state.privacy.audit = audit
        audit.start([param.shape for _, param in trainable(state.D)], state.privacy.q, state.privacy.max_grad_norm)
    evaluator = Evaluator.build(cfg, dataset, state.device) if main else None  # a missing file stops it here
    return Run(state, dataset, run_dir if main else None, evaluator)


def open_run_folder(run: Run, resume: Path | None) -> None:
    """Rank 0: the resolved config, the images folder, and on resume the logs cut back to the snapshot."""
    state, run_dir = run.state, run.run_dir
    (run_dir / run_files.IMAGES).mkdir(parents=True, exist_ok=True)
    header = "" if state.init is None else f"# train.init {state.init['path']} sha256 {state.init['sha256']}\n"
    write_text(run_dir / run_files.CONFIG, header + to_yaml(state.cfg))
    if resume is not None:
        rundir.trim_stats(run_dir, state.nimg)
        log.info("resumed from %s at %.1f kimg", resume, state.nimg / 1000)


def train(cfg: Config, dist: Dist, run_dir: Path | None, resume: Path | None = None,
          audit: AuditHooks | None = None) -> TrainState:
    """Trains until cfg.train.kimg; rank 0 writes `run_dir`, which it holds locked (a second process in it is
    refused, naming the first). Returns the final state; raises TrainingStopped after a snapshot when a
    SIGINT or SIGTERM arrives."""
    lock = FolderLock(run_dir, "training run") if dist.is_main else None
    if lock is not None:
        lock.acquire()
    try:
        run = build_run(cfg, dist, run_dir, resume, audit)
        if run.run_dir is not None:
            open_run_folder(run, resume)
        with StopSignals() as signals:
            run_rounds(run, signals)
        return run.state
    finally:
        if lock is not None:
            lock.release()


def stop_after_signal(run: Run, signal_name: str) -> None:
    """After a signal: a snapshot of the finished round (rank 0), every rank past it, then TrainingStopped."""
    state = run.state
    snapshot = None
    if run.run_dir is not None:
        snapshot = save_snapshot(state, run.run_dir / run_files.CHECKPOINTS, state.cfg.train.keep_snapshots)
    state.dist.barrier()
    state.reporter.close()
    log.info("stopping on %s at %.1f kimg: wrote %s", signal_name, state.nimg / 1000, snapshot or "(rank 0's)")
    raise TrainingStopped(signal_name, state.nimg, snapshot, run.run_dir)


def run_rounds(run: Run, signals: StopSignals | None = None) -> None:
    """The loop itself: rounds until train.kimg (or the privacy budget), with ticks, grids, evaluations and
    snapshots on their schedules, and under DP release.pt at the end; `signals` stop it after a round."""
    state, dataset, run_dir, evaluator = run.state, run.dataset, run.run_dir, run.evaluator
    cfg, main = state.cfg, run.run_dir is not None
    stream = real_stream(state, dataset)
    latents = grid_latents(state)
    if main and state.nimg == 0:
        if state.privacy is None:  # a grid of training images is outside any DP guarantee: not written
            save_reals(dataset, run_dir, cfg.train.grid_images)
        save_grid(state, run_dir, latents)

    total = int(round(cfg.train.kimg * 1000))
    bar = tqdm(total=round(total / 1000, 3), initial=round(state.nimg / 1000, 3), unit="kimg",
               disable=not (main and cfg.train.progress), dynamic_ncols=True, bar_format=
               "{l_bar}{bar}| {n:.4g}/{total:.4g} kimg [{elapsed}<{remaining}{postfix}]")
    tick_start, tick_nimg = time.perf_counter(), state.nimg
    while state.nimg < total and not budget_spent(state):
        before = state.nimg
        if state.privacy is None:
            train_round(state, reals=next(stream))
        else:
            train_round(state, private=next(stream))
        bar.update(min((state.nimg - before) / 1000, bar.total - bar.n))  # the last round may pass the total
        stop = budget_spent(state)
        if stop:
            log.info("privacy: stopping at %.1f kimg, epsilon %.3f: one more round would pass privacy.target_epsilon"
                     "=%g", state.nimg / 1000, state.privacy.ledger.epsilon(), cfg.privacy.target_epsilon)
        done = stop or state.nimg >= total
        if done or crossed(before, state.nimg, cfg.train.tick_kimg):
            now = time.perf_counter()
            tick(state, bar if main else None, (now - tick_start) / max(state.nimg - tick_nimg, 1) * 1000)
            tick_start, tick_nimg = now, state.nimg
        if main and (done or crossed(before, state.nimg, cfg.train.image_kimg)):
            save_grid(state, run_dir, latents)
        if evaluator is not None and (done or crossed(before, state.nimg, cfg.eval.every_kimg)):
            for text in evaluator.summary(evaluator.evaluate(state, run_dir)):
                log.info("eval at %.1f kimg: %s", state.nimg / 1000, text)
        if main and (done or crossed(before, state.nimg, cfg.train.snapshot_kimg)):
            save_snapshot(state, run_dir / run_files.CHECKPOINTS, cfg.train.keep_snapshots)
        if done:
            break
        if signals is not None and (received := signals.agreed(state.dist)):
            bar.close()
            stop_after_signal(run, received)
    if main and state.privacy is not None:
        save_release(state, run_dir, state.privacy.record(len(state.privacy.sampler.table)))
    elif main and state.image_set_record is not None:   # trained only on a DP image set: its record carries over
        save_release(state, run_dir, carried_record(state.image_set_record, cfg, state.init))
    state.dist.barrier()
    bar.close()
    state.reporter.close()
