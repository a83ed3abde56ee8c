"""Speed of the release filter (`leakguard filter`): candidates per second through the whole run, and
the share of the time spent rendering, embedding, searching and writing, measured in one run.

The generator is the synthfaces32 preset's G (random weights unless --generator names a checkpoint:
the networks cost the same either way), the training set 2,000 SynthFaces images of 100 people, the
matcher `synth` (its weights from --matcher synth=PATH, else random weights: the same cost; thresholds
then come from the training set's pairs). Nothing is downloaded.

  python bench/filter.py                                   # 2,000 candidates on the CPU
  python bench/filter.py --generator runs/synthfaces32-0/checkpoints/snapshot-0000030000.pt \\
      --matcher synth=~/.cache/leakguard/demo_data/matchers/synth-....pt --candidates 5000
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leakguard.audit.images import ImageTensor  # noqa: E402
from leakguard.audit.store import EmbeddingStore  # noqa: E402
from leakguard.filter import build_gate  # noqa: E402
from leakguard.filter.run import FilterSettings, run_filter  # noqa: E402
from leakguard.matchers.synth import SynthMatcher  # noqa: E402
from training.checkpoint import save_networks  # noqa: E402
from training.cli.filter import SeedSource  # noqa: E402
from training.config import load_config  # noqa: E402
from training.state import build_networks  # noqa: E402
from training.synthfaces import SynthFaces  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", type=Path, help="a checkpoint (default: the synthfaces32 G, random weights)")
    ap.add_argument("--matcher", default="synth", help="synth or synth=WEIGHTS (default: random weights)")
    ap.add_argument("--candidates", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--fmr", type=float, default=1e-2)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = args.generator or _random_generator(tmp / "G.pt")
        faces = SynthFaces(32, num_identities=100, images_per_identity=20, seed=0)
        training = ImageTensor(torch.from_numpy(faces.render_all().copy()), name="SynthFaces 100x20",
                               identities=faces.identities)
        _, _, weights = args.matcher.partition("=")
        matcher = SynthMatcher(weights=weights or None, allow_random=not weights, batch_size=args.batch)
        gate = build_gate(matcher, training, EmbeddingStore(tmp / "cache"), args.fmr)
        source = SeedSource(ckpt, range(0, 2 ** 32), 1.0, torch.device("cpu"), args.batch)
        settings = FilterSettings(fmr=args.fmr, count=args.candidates, max_candidates=args.candidates,
                                  batch=args.batch)
        start = time.perf_counter()
        t = run_filter(source, [gate], [], settings, tmp / "out")
        wall = time.perf_counter() - start
    stages = {"render": t.render, "embed": t.embed, "search": t.search, "write": t.write}
    print(f"filter: {t.candidates} candidates, 32 px, matcher {matcher.version}, training set 2,000 images, "
          f"batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"{t.candidates / wall:.1f} candidates/s ({wall:.1f} s)")
    print("| stage | seconds | share |\n|---|---:|---:|")
    for name, sec in stages.items():
        print(f"| {name} | {sec:.2f} | {100 * sec / wall:.1f}% |")
    print(f"| other | {wall - sum(stages.values()):.2f} | {100 * (wall - sum(stages.values())) / wall:.1f}% |")


def _random_generator(path: Path) -> Path:
    cfg = load_config(str(REPO / "configs" / "synthfaces32.yaml"), [])
    G, _ = build_networks(cfg, 32, 3, 0)
    save_networks(path, {"G_ema": G})
    return path


if __name__ == "__main__":
    main()
