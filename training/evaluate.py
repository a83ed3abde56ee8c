"""Evaluation during training: G_ema renders the fixed fakes (eval.first_seed.., eval.num_fakes), the
audit library scores leakage and membership per matcher, and the fidelity metrics score the fakes per
feature extractor against the training set. One line per evaluation goes to eval.jsonl, the headline
numbers to TensorBoard and stats.jsonl (Audit/..., Fidelity/...) unless the run is private.

A leak rate alone rewards a generator that makes no faces, so each line's "faces" says which fakes are
faces and how much those leak (leakguard.audit.faces): under each fidelity extractor the fakes inside the
training set's k-NN manifold (the very mask whose mean is its precision), and under each matcher with a
face detector (dlib) the fakes it finds a face in; per test the share, count and of, and per matcher and
FMR the leak rate among those faces with its bootstrap interval (eval.bootstrap resamples, seed 0).
eval.jsonl only: the share under an extractor is already logged as its precision.

    evaluator = Evaluator.build(cfg, dataset, device)   # at start: a missing file stops the run here
    evaluator.evaluate(state, run_dir)                  # at every eval.every_kimg and at the end

The training set is embedded once per matcher and extractor (the embedding store caches it on disk
by content and version; a resume finds it there). The evaluation reads training images, so under
differential privacy its numbers are the data holder's view, outside the released guarantee: they go to
eval.jsonl only (every line says so), never to the logs the privacy record covers.
"""
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from leakguard import run_files
from leakguard.atomic import finite_or_null, strict_json
from leakguard.audit.audit import AuditSettings
from leakguard.audit.evaluation import Judges, open_judges, score_fakes
from leakguard.audit.images import ImageTensor
from leakguard.audit.store import EmbeddingStore
from leakguard.matchers.registry import is_known, unknown_message
from training.config import Config
from training.data.training_set import training_images
from training.inference import generate

OUTSIDE_DP = ("these numbers read the training images (and eval.members/nonmembers): they are the data "
              "holder's view, outside the (epsilon, delta) guarantee of the released networks")


PACKS = ("arcface",)  # the matchers whose weights are a folder (an InsightFace model pack)


def _name_path(item: str, key: str) -> tuple[str, str | None]:
    name, _, path = item.partition("=")
    if path and Path(path).expanduser().is_dir() and name not in PACKS:
        raise IsADirectoryError(f"{key}: {name}'s weights {path} is a folder; name the weights file")
    if path and not Path(path).expanduser().exists():
        raise FileNotFoundError(f"{key}: {name}'s file not found: {path}")
    return name, path or None


def check_files(cfg: Config) -> None:
    """Every file the evaluation names is there (matcher weights or model packs, feature extractors, the
    membership sets); the start (Evaluator.build) and `leakguard train --dry-run` both check with this."""
    e = cfg.eval
    if e.every_kimg is None:
        return
    for item in e.matchers:
        name, weights = _name_path(item, "eval.matchers")
        if not is_known(name, weights):  # any name is free for a model file with its spec beside it
            raise ValueError(f"eval.matchers: {unknown_message(name, weights)}")
    for item in e.fidelity:
        _name_path(item, "eval.fidelity")
    for key in ("members", "nonmembers"):
        path = getattr(e, key)
        if path is not None and not Path(path).expanduser().exists():
            raise FileNotFoundError(f"eval.{key}: not found: {path}")


@dataclass
class Evaluator:
    cfg: Config
    training: object
    members: object
    nonmembers: object
    matchers: list
    calibrations: dict
    extractors: list
    store: EmbeddingStore

    @classmethod
    def build(cls, cfg: Config, dataset, device) -> "Evaluator | None":
        """None when eval.every_kimg is null; otherwise every matcher, extractor and image set, built now."""
        e = cfg.eval
        if e.every_kimg is None:
            return None
        check_files(cfg)
        j = open_judges([_name_path(item, "eval.matchers") for item in e.matchers],
                        [_name_path(item, "eval.fidelity") for item in e.fidelity], EmbeddingStore(e.cache), device,
                        e.batch, e.members, e.nonmembers)
        training = training_images(cfg.data, dataset)
        if j.matchers:
            training.identities  # an error naming the file when the training set has no identities
        return cls(cfg, training, j.members, j.nonmembers, j.matchers, j.calibrations, j.extractors, j.store)

    def seeds(self) -> list[int]:
        e = self.cfg.eval
        return list(range(e.first_seed, e.first_seed + e.num_fakes))

    def score(self, fakes, info: dict) -> tuple[dict, dict]:
        """(numbers, scalar tags) of any set of fakes (leakguard.audit.evaluation.score_fakes) under this run's
        judges; `info` describes where the fakes came from."""
        e = self.cfg.eval
        judges = Judges(self.matchers, self.extractors, self.store, self.calibrations, self.members, self.nonmembers)
        return score_fakes(fakes, self.training, judges, AuditSettings(fmrs=tuple(e.fmrs), bootstrap=e.bootstrap),
                           e.kid_subsets, info)

    def evaluate(self, state, run_dir: Path) -> dict:
        """Scores G_ema now; appends to run_dir/eval.jsonl, logs to TensorBoard (not under DP), returns the line."""
        e, start = self.cfg.eval, time.perf_counter()
        was_training = state.G_ema.training
        pixels = generate(state.G_ema, self.seeds(), state.device, batch=state.batch_gpu)   # [N, H, W, 3]
        state.G_ema.train(was_training)  # generate() switches it to eval mode; leave it as training had it
        fakes = ImageTensor(torch.from_numpy(pixels).permute(0, 3, 1, 2), name=f"G_ema at {state.nimg} images",
                            labels=[f"seed{s:04d}" for s in self.seeds()])
        line = {"nimg": state.nimg, "kimg": state.nimg / 1000, "num_fakes": len(fakes),
                "seeds": f"{e.first_seed}-{e.first_seed + e.num_fakes - 1}"}
        numbers, tags = self.score(fakes, {"nimg": state.nimg})
        line.update(numbers)
        if state.privacy is not None:
            line["privacy"] = {"epsilon": state.privacy.ledger.epsilon(), "delta": state.privacy.ledger.delta,
                               "note": OUTSIDE_DP}
        line["seconds"] = time.perf_counter() - start
        tags["Timing/eval_sec"] = line["seconds"]
        if state.privacy is None:  # under DP the covered logs hold no real-image statistic: eval.jsonl only
            state.reporter.write(state.nimg, tags)
        with open(run_dir / run_files.EVAL, "a") as f:
            f.write(strict_json(finite_or_null(line), indent=None) + "\n")
        return line

    def summary(self, line: dict) -> list[str]:
        """Short lines for the log: each matcher's leak rates, each extractor's FD, each test's share of faces."""
        out = [f"{name}: " + ", ".join(f"leak {r['leak_rate']:.3f} at FMR {r['fmr']:g}" for r in section["leakage"])
               for name, section in line.get("audit", {}).items()]
        out += [f"{p}: {s[p]:.4g}" for p, s in line.get("fidelity", {}).items()]
        out += [f"faces by {kind} {name}: {entry['count']} of {entry['of']}"
                + (" (mostly not faces)" if entry["mostly_not_faces"] else "")
                for kind, tests in line.get("faces", {}).items() for name, entry in tests.items()]
        return out

