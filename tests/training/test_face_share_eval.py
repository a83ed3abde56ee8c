"""Evaluation during training writes "faces" to eval.jsonl (issue 28, item 6). A tiny run whose G_ema
rendering is replaced by half copies of training images and half noise: under the fidelity extractor the
share of fakes in the training set's k-NN manifold equals its precision and a mask computed here, the
leak rate among those fakes equals the one counted here from the matcher's scores, and a separate
`leakguard audit --features` of the same images reports the same numbers."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from leakguard.fidelity.metrics import in_real_manifold
from leakguard.matchers.synth import SynthMatcher
from tests.training.test_eval_during_training import eval_config, lines
from training import evaluate, loop, rundir
from training.cli import main
from training.data.build import export_zip
from training.distributed import Dist
from training.synthfaces import SynthFaces

TRAINING = dict(num_identities=6, images_per_identity=4, seed=0)   # tests/training/tiny.py's data


def half_copies_half_noise() -> np.ndarray:
    """[12, 32, 32, 3] uint8: training images 0, 4, 8, ... (one per person), then six of uniform noise."""
    train = SynthFaces(32, **TRAINING).render_all().transpose(0, 2, 3, 1)          # [24, H, W, 3]
    noise = np.random.default_rng(5).integers(0, 256, [6, 32, 32, 3], dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([train[::4], noise]))


@pytest.fixture(scope="module")
def run(tmp_path_factory, synth_matcher_weights):
    tmp = tmp_path_factory.mktemp("faces_eval")
    fakes = half_copies_half_noise()
    cfg = eval_config(tmp, synth_matcher_weights, "train.kimg=0.008")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate, "generate", lambda G, seeds, device, batch: fakes.copy())
        loop.train(cfg, Dist(), run_dir)
    return tmp, run_dir, fakes


def test_the_eval_line_says_which_fakes_are_faces_and_how_much_those_leak(run, synth_matcher_weights):
    _, run_dir, fakes = run
    (line,) = lines(run_dir)
    assert list(line["faces"]) == ["manifold"]              # the synth matcher has no face detector
    e, fid = line["faces"]["manifold"]["fd_synth"], line["fidelity"]["fd_synth"]
    assert (e["of"], e["k"], e["extractor"], e["extractor_version"]) == (12, 3, "synth", fid["extractor_version"])
    # the oracle: the matcher's unit embeddings, the manifold mask and each fake's best cosine, here
    m = SynthMatcher(weights=synth_matcher_weights)
    real = m.embed(torch.from_numpy(SynthFaces(32, **TRAINING).render_all().copy())).double()   # [24, D]
    fake = m.embed(torch.from_numpy(fakes).permute(0, 3, 1, 2)).double()                       # [12, D]
    faces = in_real_manifold(real, fake, k=3)
    best = (fake @ real.T).max(dim=1).values.numpy()                                            # [12]
    assert faces[:6].all() and e["count"] == faces.sum() >= 6   # each copy lies in its own original's ball
    assert e["share"] == fid["fd_synth_precision"] == faces.mean() and e["mostly_not_faces"] is False
    audit_rows = line["audit"]["synth"]["leakage"]
    for r, a in zip(e["leakage"]["synth"], audit_rows):
        assert (r["fmr"], r["threshold"], r["supported"]) == (a["fmr"], a["threshold"], a["supported"])
        assert r["leaking_samples"] == int((best[faces] >= r["threshold"] - 1e-6).sum())
        assert r["leak_rate"] == r["leaking_samples"] / e["count"] and len(r["leak_rate_ci"]) == 2
        # every copy leaks; over all twelve fakes the rate is lower than among the faces
        assert r["leaking_samples"] >= 6 and r["leak_rate"] >= a["leak_rate"]


def test_the_faces_equal_a_separate_audit_with_features(run, synth_matcher_weights):
    tmp, run_dir, fakes = run
    folder = tmp / "fakes"
    folder.mkdir()
    for i, img in enumerate(fakes):
        Image.fromarray(img).save(folder / f"seed{i:04d}.png")
    train = export_zip(tmp / "train.zip", SynthFaces(32, **TRAINING))
    assert main(["audit", "--generated", str(folder), "--training", str(train), "--cache", str(tmp / "c2"),
                 "--matcher", f"synth={synth_matcher_weights}", "--features", f"synth={synth_matcher_weights}",
                 "--bootstrap", "20", "--out", str(tmp / "audit")]) == 0
    theirs = json.loads((tmp / "audit" / "report.json").read_text())["faces"]["manifold"]["fd_synth"]
    ours = lines(run_dir)[-1]["faces"]["manifold"]["fd_synth"]
    assert (ours["count"], ours["of"], ours["k"], ours["share"], ours["share_ci"]) == (
        theirs["count"], theirs["of"], theirs["k"], theirs["share"], theirs["share_ci"])
    for a, b in zip(ours["leakage"]["synth"], theirs["leakage"]["synth"]):
        assert (a["fmr"], a["leaking_samples"], a["leak_rate"]) == (b["fmr"], b["leaking_samples"], b["leak_rate"])
