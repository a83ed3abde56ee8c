"""Private Evolution's cost per iteration against one evaluation's embedding cost, and its vote at scale in
bounded memory, on this machine, as ratios measured in the same run.

1. Per iteration (training.pe.run.iterate: render M candidates, embed them, the vote of N people, noise,
   resampling, variation) against what every evaluation during training pays anyway: rendering and embedding
   its E fakes. Tiny public generator (random weights, 32 px) and a synth matcher with random weights: the
   cost does not depend on the weights' values.
2. The vote alone at scale (random unit embeddings): N people x k images against M candidates with the
   search's memory budget, its peak working memory beside what the full score matrix would take.

  python bench/pe.py                                   # M 1000, E 2000, N 2000 people x 4 images
  python bench/pe.py --people 100000 --candidates 10000 --dim 512 --memory-mib 256
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from search import measured_once  # noqa: E402  (bench/search.py: seconds and peak working memory of one call)
from timing import median_seconds  # noqa: E402

from leakguard.audit.images import ImageTensor  # noqa: E402
from leakguard.audit.store import EmbeddingStore  # noqa: E402
from leakguard.matchers.synth import SynthMatcher  # noqa: E402
from leakguard.pe import vote_histogram, voters  # noqa: E402
from training.cli.generate import random_generator  # noqa: E402
from training.pe.inputs import PEInputs  # noqa: E402
from training.pe.latents import render  # noqa: E402
from training.pe.run import embed, iterate, start_state  # noqa: E402
from training.pe.settings import PESettings  # noqa: E402

GIB = 2 ** 30


def per_iteration(args, folder: Path) -> None:
    device = torch.device("cpu")
    G = random_generator(32, 0).eval().requires_grad_(False)
    matcher = SynthMatcher(allow_random=True, batch_size=256)
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(args.private_people), args.images)
    private = rng.normal(size=(len(ids), matcher.embedding_dim)).astype(np.float32)
    s = PESettings(generator="-", data="-", embedding="synth", sigma=2.0, iterations=args.repeats + 3,
                   population=args.population, batch=64, secret_seed=1)
    inp = PEInputs(G, {}, None, ids, args.private_people, matcher, 2.0, 0.0, 1e-5, EmbeddingStore(folder), None,
                   device)
    state = start_state(s, inp)
    voting = voters(private, ids, s.vote)

    def one_iteration():
        nonlocal state
        state = iterate({**state, "iteration": 0}, s, inp, voting)

    def evaluation_embedding():
        fakes = ImageTensor(render(G, torch.randn(args.eval_fakes, G.z_dim), 1.0, device, 64))
        return embed(matcher, fakes.images)
    it = median_seconds(one_iteration, device, args.repeats, warmup=1)
    ev = median_seconds(evaluation_embedding, device, args.repeats, warmup=1)
    print(f"\nper iteration: M {args.population} candidates, {args.private_people} people x {args.images} images "
          f"(synth matcher, 32 px, {torch.get_num_threads()} threads)")
    print(f"{'step':<48}{'seconds':>9}{'vs eval':>9}")
    print(f"{'one evaluation: render + embed ' + str(args.eval_fakes) + ' fakes':<48}{ev:>9.3f}{1.0:>9.2f}")
    print(f"{'one PE iteration (training.pe.run.iterate)':<48}{it:>9.3f}{it / ev:>9.2f}")


def vote_at_scale(args) -> None:
    rng = torch.Generator().manual_seed(0)
    n = args.people * args.images
    private = torch.nn.functional.normalize(torch.randn(n, args.dim, generator=rng), dim=1)
    ids = torch.arange(args.people).repeat_interleave(args.images)
    cand = torch.nn.functional.normalize(torch.randn(args.candidates, args.dim, generator=rng), dim=1)
    budget = args.memory_mib * 2 ** 20
    print(f"\nvote at scale: {args.people:,} people x {args.images} images, {args.candidates:,} candidates, "
          f"{args.dim}-d, memory budget {args.memory_mib} MiB")
    print(f"{'vote':<12}{'seconds':>9}{'peak GiB':>10}{'full matrix GiB':>17}")
    for vote in ("centroid", "images"):
        rows = args.people if vote == "centroid" else n
        _, sec, peak = measured_once(lambda: vote_histogram(private, ids, cand, vote, memory_bytes=budget),
                                     torch.device("cpu"))
        print(f"{vote:<12}{sec:>9.2f}{peak:>10.3f}{rows * args.candidates * 4 / GIB:>17.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--population", type=int, default=1000)
    p.add_argument("--eval-fakes", type=int, default=2000)
    p.add_argument("--private-people", type=int, default=2000)
    p.add_argument("--people", type=int, default=20000)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--candidates", type=int, default=10000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--memory-mib", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        per_iteration(args, Path(folder))
    vote_at_scale(args)


if __name__ == "__main__":
    main()
