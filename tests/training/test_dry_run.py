"""`leakguard train --dry-run` checks what the start checks — files the config names, the data, DP's refusals
that need the data, the snapshot to resume, the run folder — and writes nothing: each bad case is one line
naming the key, exit 2, and the folders are as they were; a good config passes and says what it checked."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fixtures.seams.make_fixture import MATCHER
from tests.training.dp.test_dp_training import DP
from tests.training.tiny import TINY
from training.cli import main
from training.data.build import export_zip
from training.synthfaces import SynthFaces


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dry")
    shutil.copy(MATCHER, root / "synth.pt")                                  # weights without a calibration
    export_zip(root / "faces64.zip", SynthFaces(64, num_identities=3, images_per_identity=2))
    (root / "plain").mkdir()                                                  # images without identities
    for i in range(4):
        Image.fromarray(np.full([32, 32, 3], 40 * i, np.uint8)).save(root / "plain" / f"{i}.png")
    (root / "a_file").write_text("not a folder")
    return root


def tree(root) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


LEAK = ["leakage_reg.weight=1", "leakage_reg.bank=centroid", "leakage_reg.bank_noise=2"]
CASES = {
    "missing regularizer weights": ([*LEAK, "leakage_reg.matchers=[synth={root}/missing.pt]"],
                                    "leakage_reg.matchers: synth's weights file not found"),
    "regularizer weights without calibration": ([*LEAK, "leakage_reg.matchers=[synth={root}/synth.pt]"],
                                                "has no calibration file"),
    "regularizer weights a folder": ([*LEAK, "leakage_reg.matchers=[synth={root}]"], "is a folder"),
    "missing eval matcher": (["eval.every_kimg=1", "eval.matchers=[synth={root}/missing.pt]"],
                             "eval.matchers: synth's file not found"),
    "missing eval features": (["eval.every_kimg=1", "eval.fidelity=[synthfaces={root}/missing.pt]"],
                              "eval.fidelity: synthfaces's file not found"),
    "missing members": (["eval.every_kimg=1", "eval.matchers=[synth={root}/synth.pt]", "eval.members={root}/m.zip",
                         "eval.nonmembers={root}/n.zip"], "eval.members: not found"),
    "missing data": (["data.path={root}/missing.zip"], "missing.zip"),
    "data of another resolution": (["data.path={root}/faces64.zip"], "64"),
    "delta not below 1/units": ([*DP, "augment.mode=noaug", "privacy.delta=0.5"], "privacy.delta=0.5 is not below"),
    "more expected units than units": ([*DP, "augment.mode=noaug", "privacy.expected_batch=50"],
                                       "privacy.expected_batch=50"),
    "identity DP without identities": ([*DP, "augment.mode=noaug", "data.path={root}/plain", "privacy.expected_batch=2"],
                                       "identities"),
    "missing resume": (["--resume", "{root}/missing.pt"], "resume checkpoint not found"),
    "run_dir a file": (["run_dir={root}/a_file"], "run_dir="),
    "cuda without a GPU": (["train.device=cuda"], "train.device=cuda"),
    "batch not a multiple": (["train.batch=4", "train.batch_gpu=3"], "train.batch=4"),
    "negative seed": (["train.seed=-1"], "train.seed=-1"),
    "infinite kimg": (["train.kimg=inf"], "train.kimg=inf"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_start_that_would_fail_fails_the_dry_run_writing_nothing(root, capsys, name):
    overrides, message = CASES[name]
    if name == "cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    args = [a.replace("{root}", str(root)) for a in overrides]
    before = tree(root)
    code = main(["train", "--dry-run", *TINY, f"run_dir={root / 'runs'}", *args])
    err = capsys.readouterr().err
    assert code == 2, (name, err[-1500:])
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err[-1500:]
    assert tree(root) == before                                   # nothing written, not even an empty folder


def test_a_good_config_passes_and_says_what_it_checked(root, capsys, tmp_path):
    snapshot_free = ["eval.every_kimg=1", f"eval.matchers=[synth={MATCHER}]", *DP, "augment.mode=noaug"]
    code = main(["train", "--dry-run", *TINY, f"run_dir={tmp_path / 'runs'}", *snapshot_free])
    out = capsys.readouterr().out
    assert code == 0
    ok = [line for line in out.splitlines() if line.startswith("# ok:")]
    assert any("privacy: 6 units (identity)" in line for line in ok) and any("eval:" in line for line in ok)
    assert not (tmp_path / "runs").exists()
