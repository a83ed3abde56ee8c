"""The identity bootstrap of thresholds (leakguard.matchers.threshold_ci) against calibrate() on the
same embeddings, in one run: what the interval costs on top of the calibration it accompanies.
Random unit rows stand for embeddings (the cost does not depend on their values).

  python bench/threshold_ci.py                         # 100 people x 20 images and 500 x 4 (about 2M pairs)
  python bench/threshold_ci.py --sets 1000x2 --resamples 200
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import paired_median_seconds  # noqa: E402
from leakguard.matchers.calibrate import calibrate  # noqa: E402
from leakguard.matchers.threshold_ci import threshold_intervals  # noqa: E402

FMRS = (1e-2, 1e-3, 1e-4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["100x20", "500x4"], help="PEOPLExIMAGES per set")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--resamples", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'set':>10} {'impostor pairs':>15} {'calibrate s':>12} {'bootstrap s':>12} {'ratio':>7}")
    for spec in args.sets:
        people, per = (int(x) for x in spec.split("x"))
        e = rng.normal(size=[people * per, args.dim]).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        ids = np.repeat(np.arange(people), per)
        t = paired_median_seconds({"calibrate": lambda: calibrate(e, ids, fmrs=FMRS),
                                   "bootstrap": lambda: threshold_intervals(e, ids, FMRS, args.resamples)},
                                  torch.device("cpu"), args.repeats, warmup=1)
        pairs = (len(e) * (len(e) - 1) - people * per * (per - 1)) // 2
        print(f"{spec:>10} {pairs:>15,} {t['calibrate']:>12.3f} {t['bootstrap']:>12.3f} "
              f"{t['bootstrap'] / t['calibrate']:>7.2f}")


if __name__ == "__main__":
    main()
