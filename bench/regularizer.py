"""What the identity-leakage regularizer costs G: the leak step (fakes through a differentiable matcher,
the max over the identity bank, backward to G) against the plain G step, timed side by side in one run,
and the regularized G step amortised over the lazy interval: (G step + leak step / interval) / G step.

The matcher runs with random weights unless --matcher NAME=WEIGHTS names them, and the bank is random
unit rows (--bank-rows of them, e.g. 70,000 for FFHQ's images): the cost does not depend on what the
weights or rows hold. The data is random pixels of the preset's shape, as in bench/train_step.py.

  python bench/regularizer.py                                         # synthfaces32, synth, CPU
  python bench/regularizer.py --config configs/ffhq256.yaml --matcher arcface_torch --bank-rows 70000 \\
      train.device=cuda
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import paired_median_seconds  # noqa: E402
from bench.train_step import RandomImages  # noqa: E402
from leakguard.atomic import write_json  # noqa: E402
from leakguard.matchers.registry import MATCHERS  # noqa: E402
from leakguard.regularizer import IdentityBank, IdentityLeakagePenalty  # noqa: E402
from training import steps  # noqa: E402
from training.config import load_config  # noqa: E402
from training.distributed import Dist, pick_device  # noqa: E402
from training.leakage import Leakage  # noqa: E402
from training.report import Reporter  # noqa: E402
from training.state import build_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def penalty(name: str, weights: str | None, device, batch: int, rows: int) -> IdentityLeakagePenalty:
    matcher = MATCHERS[name](weights=weights, device=device, batch_size=batch, allow_random=weights is None)
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(rows, matcher.embedding_dim, generator=g), dim=1)
    # tau below every score: every fake is penalised, the most work a leak step can do
    return IdentityLeakagePenalty(matcher, IdentityBank(bank.to(device), np.arange(rows), "images"), threshold=-1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "synthfaces32.yaml"))
    ap.add_argument("--matcher", default="synth", help="NAME or NAME=WEIGHTS (a differentiable matcher)")
    ap.add_argument("--bank-rows", type=int, default=2000, help="identity bank rows (default 2000)")
    ap.add_argument("--rounds", type=int, default=5, help="timed repeats per step")
    ap.add_argument("--json", metavar="OUT", help="also write the numbers to OUT as JSON")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    device = pick_device(cfg.train.device)
    dataset = RandomImages(cfg.data.resolution)
    state = build_state(cfg, dataset, Dist(device=device), Reporter(None))
    name, _, weights = args.matcher.partition("=")
    interval = cfg.leakage_reg.interval
    batch = cfg.leakage_reg.batch or state.batch_gpu
    state.leakage = Leakage([penalty(name, weights or None, device, batch, args.bank_rows)], weight=1.0,
                            interval=interval, start_nimg=0, batch=batch)
    ids = steps.fake_chunks(state)
    sec = paired_median_seconds({"G step": lambda: steps.g_step(state, ids),
                                 "leak step": lambda: steps.leak_step(state, ids, gain=interval)},
                                device, args.rounds, warmup=1)
    plain, leak = sec["G step"], sec["leak step"]
    regularized = plain + leak / interval
    print(f"{Path(args.config).stem}: {cfg.data.resolution}px, batch {cfg.train.batch} ({state.batch_gpu} per pass), "
          f"matcher {name} ({'weights' if weights else 'random weights'}), bank {args.bank_rows} rows, "
          f"device {device}" + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""))
    print("| step | ms | every | amortised ms | vs G step |\n|---|---:|---:|---:|---:|")
    print(f"| G step | {1000 * plain:.1f} | 1 | {1000 * plain:.1f} | 1.00x |")
    print(f"| leak step | {1000 * leak:.1f} | {interval} | {1000 * leak / interval:.1f} | {leak / plain:.2f}x |")
    print(f"| regularized G step | | | {1000 * regularized:.1f} | **{regularized / plain:.2f}x** (target <= 1.3x) |")
    if args.json:
        write_json(args.json, {"config": Path(args.config).stem, "resolution": cfg.data.resolution, "matcher": name,
                               "bank_rows": args.bank_rows, "interval": interval, "device": str(device),
                               "plain_s_per_step": plain, "leak_s": leak, "regularized_s_per_step": regularized})


if __name__ == "__main__":
    main()
