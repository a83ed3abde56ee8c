"""The Private Evolution pilot of docs/private_evolution.md: FD of the final set for a few settings, one secret
key, so the DP example's PE arms could be chosen (the data holder's view: it reads the private images).

    python tools/pe_pilot.py                      # the pilot's settings, after `make dp-example` made the data
    python tools/pe_pilot.py '{"population": 500}' '{"epsilon": 1.0, "iterations": 3}'

Each argument is a JSON object of PESettings fields over the base below (epsilon 8, 5 iterations, 2,000 final
images, the synth matcher); prints FD, precision and recall in the synthfaces features against the private set.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from leakguard.audit.images import ImageFiles  # noqa: E402
from leakguard.audit.store import EmbeddingStore  # noqa: E402
from leakguard.fidelity.extractors import build_extractor  # noqa: E402
from leakguard.fidelity.scores import fidelity_scores  # noqa: E402
from training.pe import PESettings, run_pe  # noqa: E402
from training.pe.inputs import open_inputs  # noqa: E402
from training.pe.latents import render  # noqa: E402

DATA = REPO / "runs" / "dp-example"
MATCHERS = Path.home() / ".cache" / "leakguard" / "demo_data" / "matchers"
FEATURES = Path.home() / ".cache" / "leakguard" / "fidelity" / "synthfaces-32.pt"
OUT = DATA / "pe-pilot"
PILOT = [{"threshold": 2, "variation": [0.5, 0.05]}, {"variation": [0.5, 0.2]}, {"population": 250},
         {"iterations": 10, "variation": [0.5, 0.05]}, {"population": 250, "variation": [0.5, 0.5]},
         {"population": 500}, {"population": 100},
         {"population": 250, "embedding": "synthfaces", "embedding_path": str(FEATURES)},
         {"population": 250, "epsilon": 1.0}, {"population": 100, "epsilon": 1.0, "iterations": 3}]


def settings(change: dict) -> PESettings:
    base = dict(generator=str(DATA / "public.pt"), data=str(DATA / "data" / "private.zip"), embedding="synth",
                embedding_path=str(next(MATCHERS.glob("synth-*.pt"))), epsilon=8.0, iterations=5, population=2000,
                count=2000, variation=(0.5, 0.3), secret_seed=1, device="cpu")
    base.update(change)
    base["variation"] = tuple(base["variation"])
    return PESettings(**base)


def main(argv: list[str]) -> int:
    extractor = build_extractor("synthfaces", str(FEATURES))
    real = np.asarray(EmbeddingStore().embeddings(ImageFiles(DATA / "data" / "private.zip"), extractor))
    for change in [json.loads(a) for a in argv] or PILOT:
        s = settings(change)
        inputs = open_inputs(s, torch.device("cpu"))
        out = OUT / "_".join(f"{k}{v}" for k, v in sorted(change.items()) if k != "embedding_path").replace(" ", "")
        start = time.perf_counter()
        run_pe(s, out, inputs)
        fake = extractor.embed(render(inputs.G, torch.load(out / "latents.pt"), 1.0, "cpu", 64)).numpy()
        scores = fidelity_scores(real, fake, extractor, kid_subsets=10, seed=0)
        print(json.dumps(change), f"FD {scores['fd_synthfaces']:.2f} precision {scores['fd_synthfaces_precision']:.3f} "
              f"recall {scores['fd_synthfaces_recall']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
