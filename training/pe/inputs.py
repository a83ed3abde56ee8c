"""What a Private Evolution run opens before it writes anything: the public generator (refused if it was
trained on these people), the private people and their embeddings, the noise for the budget, and the judges
of the per-iteration evaluation. Every refusal is one error naming the option."""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from leakguard.audit.evaluation import Judges
from leakguard.audit.evaluation import open_judges as build_judges
from leakguard.audit.images import ImageFiles
from leakguard.audit.store import EmbeddingStore
from leakguard.fidelity.extractors import build_extractor
from leakguard.matchers.registry import is_known, unknown_message
from leakguard.pe.mechanism import planned_epsilon, plan_sigma
from leakguard.torch_files import file_sha256
from training.checkpoint import load_any
from training.dp.setup import default_delta
from training.networks import Generator
from training.pe.settings import PESettings, check_settings


@dataclass
class PEInputs:
    G: Generator
    generator_record: dict        # the public generator's path and SHA-256
    private: ImageFiles
    ids: np.ndarray               # [n] identity of each private image
    people: int
    extractor: object             # where the people vote
    sigma: float
    epsilon: float                # planned for all T iterations
    delta: float
    store: EmbeddingStore
    judges: Judges | None
    device: torch.device


def _split(item: str, option: str) -> tuple[str, str | None]:
    name, _, path = item.partition("=")
    if path and not Path(path).expanduser().exists():
        raise FileNotFoundError(f"{option} {item}: {path} not found")
    return name, path or None


def open_judges(s: PESettings, device, store) -> Judges | None:
    if not s.eval_matchers and not s.eval_features:
        return None
    matchers = []
    for item in s.eval_matchers:
        name, weights = _split(item, "--eval-matcher")
        if not is_known(name, weights):
            raise ValueError(f"--eval-matcher {item}: {unknown_message(name, weights)}")
        matchers.append((name, weights))
    return build_judges(matchers, [_split(item, "--eval-features") for item in s.eval_features], store, device,
                        s.batch, s.eval_members, s.eval_nonmembers)


def pick_device(name: str) -> torch.device:
    """'auto' is cuda when there is a GPU, else cpu (as training's train.device)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def open_generator(path: str, private: ImageFiles) -> tuple[Generator, dict]:
    """G_ema of a public generator file; one whose checkpoint records these private images as its training
    data is refused (PE's epsilon does not count what the generator learned)."""
    nets = load_any(path)
    G = nets.get("G_ema", nets.get("G"))
    if not isinstance(G, Generator):
        raise ValueError(f"--generator {path}: holds no generator (G_ema or G)")
    if G.c_dim != 0:
        raise ValueError(f"--generator {path}: a conditional generator ({G.c_dim} classes); Private Evolution here "
                         "evolves an unconditional one's latents")
    if G.img_channels != 3:
        raise ValueError(f"--generator {path}: makes {G.img_channels}-channel images; the embeddings need RGB")
    seen = (nets.get("extra") or {}).get("dataset_fingerprint")
    if seen is not None and seen == private.fingerprint:
        raise ValueError(f"--generator {path}: was trained on --data {private.path} (the same dataset fingerprint); "
                         "Private Evolution needs a generator that never saw the private people")
    return G.eval().requires_grad_(False), {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}


def open_inputs(s: PESettings, device: torch.device) -> PEInputs:
    check_settings(s)
    private = ImageFiles(s.data)
    ids = private.identities                                  # an error naming the file when there are none
    people = len(np.unique(ids))
    if people < 2:
        raise ValueError(f"--data {s.data}: holds {people} person; votes need at least 2 people")
    delta = s.delta if s.delta is not None else default_delta(people)
    if delta >= 1 / people:
        raise ValueError(f"--delta {delta:g} is not below 1/people = 1/{people}; choose at most {0.1 / people:.3g}")
    G, record = open_generator(s.generator, private)
    extractor = build_extractor(s.embedding, s.embedding_path, device=device, batch_size=s.batch)
    sigma = s.sigma if s.sigma is not None else plan_sigma(s.epsilon, s.iterations, delta, s.accountant)
    epsilon = planned_epsilon(sigma, s.iterations, delta, s.accountant)
    if not math.isfinite(epsilon):
        raise ValueError(f"--sigma {sigma:g}: epsilon is infinite over {s.iterations} iterations; add noise")
    store = EmbeddingStore(s.cache)
    return PEInputs(G.to(device), record, private, ids, people, extractor, sigma, epsilon, delta, store,
                    open_judges(s, device, store), device)
