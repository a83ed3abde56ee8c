"""Training speed of a preset on this device: each step (G, path length, D, R1) timed separately,
as sec/kimg and peak memory, with ratios against the G step measured in the same run.

The data is random pixels of the preset's shape (nothing to download or decode), so this measures
the networks, losses, augmentation and optimizers, not the input pipeline.

  python bench/train_step.py                                       # synthfaces32, CPU-friendly
  python bench/train_step.py --config configs/ffhq256.yaml train.batch_gpu=8
  python bench/train_step.py --config configs/ffhq1024.yaml --rounds 5
  python bench/train_step.py --json steps.json     # the rows also as JSON (bench/gpu_check.py reads it)
"""
import argparse
import resource
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import median_seconds, sync  # noqa: E402
from cuda_ops import _impl  # noqa: E402
from leakguard.atomic import write_json  # noqa: E402
from training import steps  # noqa: E402
from training.data import Chunk  # noqa: E402
from training.config import load_config  # noqa: E402
from training.distributed import Dist, pick_device  # noqa: E402
from training.report import Reporter  # noqa: E402
from training.state import build_state  # noqa: E402


class RandomImages:
    """Stands in for a dataset of the preset's resolution."""
    name, num_channels, label_dim = "random", 3, 0

    def __init__(self, resolution: int, n: int = 64):
        self.resolution = resolution
        self.images = np.random.default_rng(0).integers(0, 256, [n, 3, resolution, resolution], dtype=np.uint8)

    def __len__(self):
        return len(self.images)


def timed(fn, device, repeats):
    """Median seconds of fn() over `repeats` calls after a warm-up, and the peak memory in GiB: CUDA
    allocations during the timed calls, or on the CPU the process's peak resident set so far (it
    cannot be reset per step)."""
    fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sec = median_seconds(fn, device, repeats, warmup=0)
    if device.type == "cuda":
        return sec, torch.cuda.max_memory_allocated(device) / 2 ** 30
    return sec, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "synthfaces32.yaml"))
    ap.add_argument("--rounds", type=int, default=5, help="timed repeats per step")
    ap.add_argument("--json", metavar="OUT", help="also write the rows to OUT as JSON")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    device = pick_device(cfg.train.device)
    torch.backends.cudnn.benchmark = True
    dataset = RandomImages(cfg.data.resolution)
    state = build_state(cfg, dataset, Dist(device=device), Reporter(None))
    imgs = torch.as_tensor(dataset.images[:state.batch_gpu], device=device).float() / 127.5 - 1
    chunks = [Chunk(img=imgs, c=torch.zeros(len(imgs), 0, device=device), index=k) for k in range(state.accum)]
    batch = cfg.train.batch

    ids = [c.index for c in chunks]
    rows = [("G step", lambda: steps.g_step(state, ids), 1),
            ("D step", lambda: steps.d_step(state, chunks), 1)]
    if cfg.loss.pl_weight > 0:
        rows.append(("path length", lambda: steps.pl_step(state, ids, cfg.loss.pl_interval), cfg.loss.pl_interval))
    if cfg.loss.r1_gamma > 0:
        rows.append(("R1", lambda: steps.r1_step(state, chunks, cfg.loss.r1_interval), cfg.loss.r1_interval))

    print(f"{Path(args.config).stem}: {cfg.data.resolution}px, batch {batch} ({state.batch_gpu} per pass, "
          f"{state.accum} passes), augment {cfg.augment.mode}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads"))
    print(f"{'step':<14}{'sec/kimg':>10}{'every':>7}{'amortized':>11}{'vs G step':>11}{'peak GiB':>10}")
    base = None
    total = 0.0
    measured = []
    for name, fn, every in rows:
        sec, mem = timed(fn, device, args.rounds)
        per_kimg = sec / batch * 1000
        base = base or per_kimg
        total += per_kimg / every
        measured.append({"step": name, "sec_per_kimg": per_kimg, "every": every, "peak_gib": mem})
        print(f"{name:<14}{per_kimg:>10.3f}{every:>7}{per_kimg / every:>11.3f}{per_kimg / base:>10.2f}x{mem:>10.2f}")
    print(f"{'round':<14}{'':>10}{'':>7}{total:>11.3f}{total / base:>10.2f}x   (sec/kimg of training)")
    if args.json:  # which implementation the ops ran: a fused run that fell back to the reference says so
        impl, why = _impl.explain(device.type)
        write_json(args.json, {"config": Path(args.config).stem, "resolution": cfg.data.resolution, "batch": batch,
                               "device": str(device), "ops": impl, "ops_why": why, "steps": measured,
                               "round_sec_per_kimg": total})


if __name__ == "__main__":
    main()
