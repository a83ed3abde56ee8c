"""What evaluation during training costs: one evaluation (render eval.num_fakes, embed them per matcher
and extractor, search the training set, score leakage, membership and fidelity) against the training
time of the eval.every_kimg interval it sits in, both measured in this run and printed as a ratio.
The training set's embeddings are computed once first (a run does that once; a resume finds them).

  python bench/eval.py eval.matchers=[synth=synth.pt] eval.fidelity=[synth=synth.pt]
  python bench/eval.py --config configs/synthfaces32.yaml eval.every_kimg=10 eval.matchers=[synth=synth.pt]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import median_seconds  # noqa: E402
from training.config import load_config  # noqa: E402
from training.data.loader import open_dataset  # noqa: E402
from training.distributed import Dist, pick_device  # noqa: E402
from training.evaluate import Evaluator  # noqa: E402
from training.loop import real_stream  # noqa: E402
from training.report import Reporter  # noqa: E402
from training.state import build_state  # noqa: E402
from training.steps import train_round  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "synthfaces32.yaml"))
    ap.add_argument("--rounds", type=int, default=20, help="training rounds timed for sec/kimg")
    ap.add_argument("--repeats", type=int, default=3, help="timed evaluations")
    ap.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides (eval.matchers=[...] etc.)")
    args = ap.parse_args()
    cfg = load_config(args.config, ["eval.every_kimg=10", *args.overrides])
    device = pick_device(cfg.train.device)
    dataset = open_dataset(cfg.data)
    state = build_state(cfg, dataset, Dist(device=device), Reporter(None))
    evaluator = Evaluator.build(cfg, dataset, device)
    stream = real_stream(state, dataset)

    def rounds():
        for _ in range(args.rounds):
            train_round(state, next(stream))

    sec_per_kimg = median_seconds(rounds, device, 3, warmup=1) / (args.rounds * cfg.train.batch) * 1000
    with tempfile.TemporaryDirectory() as run_dir:
        t0 = time.perf_counter()
        evaluator.evaluate(state, Path(run_dir))              # the first one embeds the training set
        first = time.perf_counter() - t0
        each = median_seconds(lambda: evaluator.evaluate(state, Path(run_dir)), device, args.repeats, warmup=0)
    interval = sec_per_kimg * cfg.eval.every_kimg
    e = cfg.eval
    print(f"{Path(args.config).stem}: {cfg.data.resolution}px, {len(dataset)} training images, "
          f"{e.num_fakes} fakes, matchers {e.matchers}, fidelity {e.fidelity}, device {device}")
    print(f"training: {sec_per_kimg:.2f} sec/kimg -> {interval:.1f} s per eval.every_kimg={e.every_kimg:g}")
    print(f"first evaluation (embeds the training set): {first:.1f} s")
    print(f"evaluation: {each:.1f} s = {each / interval:.3f}x the interval's training time "
          f"(adds {100 * each / interval:.1f}% to wall time)")


if __name__ == "__main__":
    main()
