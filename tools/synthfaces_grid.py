"""Makes docs/synthfaces_grid.png (rows: people, columns: their images) and, with --speed, times rendering.

    python tools/synthfaces_grid.py                      # writes docs/synthfaces_grid.png
    python tools/synthfaces_grid.py --speed              # ms per image at 32/64/128/256 px on one core

The grid's last column is each person under Nuisance.neutral() (frontal, no expression, grey
background); the others are their images 0..6 of seed 0, as SynthFaces serves them.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from training.synthfaces import Nuisance, identity_params, nuisance_params, render_face

DOCS = Path(__file__).resolve().parents[1] / "docs"


def grid(first_identity: int, rows: int, cols: int, resolution: int, seed: int) -> np.ndarray:
    """uint8 [rows * res, cols * res, 3]: row r is person first_identity + r, images edge to edge."""
    lines = []
    for i in range(first_identity, first_identity + rows):
        p = identity_params(i, seed)
        images = [render_face(p, nuisance_params(i, k, seed), resolution) for k in range(cols - 1)]
        lines.append(np.concatenate(images + [render_face(p, Nuisance.neutral(), resolution)], axis=1))
    return np.concatenate(lines, axis=0)


def speed(resolutions=(32, 64, 128, 256), people: int = 50) -> None:
    """Median over repeats of the mean time per image, params drawn outside the timer."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the requirement states it
    work = [(identity_params(i), nuisance_params(i, 0)) for i in range(people)]
    print(f"{'px':>5} {'ms/image':>9} {'images/s':>9}")
    for res in resolutions:
        render_face(*work[0], res)  # warm-up
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            for p, n in work:
                render_face(p, n, res)
            runs.append((time.perf_counter() - t) / people)
        ms = float(np.median(runs)) * 1e3
        print(f"{res:>5} {ms:>9.2f} {1e3 / ms:>9.0f}")
    t = time.perf_counter()
    for i in range(people):
        identity_params(i), nuisance_params(i, 1)
    print(f"identity_params + nuisance_params: {(time.perf_counter() - t) / people * 1e3:.2f} ms per image")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DOCS / "synthfaces_grid.png")
    ap.add_argument("--first-identity", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", action="store_true", help="time rendering instead of writing the grid")
    args = ap.parse_args()
    if args.speed:
        speed()
        return
    Image.fromarray(grid(args.first_identity, 6, 8, args.resolution, args.seed)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
