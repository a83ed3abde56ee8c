"""Matchers given as model files with a sidecar spec, in training's config paths as the built-ins are:
an ONNX model audited during training and in a sweep under any name; a differentiable TorchScript model accepted by the
leakage regularizer and moving G; an ONNX (or non-differentiable) one refused at the config check in one
line naming leakage_reg.matchers, before anything is written."""
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from leakguard.matchers.calibrate import calibration_path, load_calibration
from leakguard.matchers.file_matcher import FileMatcher
from leakguard.sweep.results import read_rows
from tests.file_models import onnx_model, torchscript_model
from tests.training.tiny import TINY, tiny_config
from training import loop, rundir
from training.cli import main
from training.config import ConfigError
from training.data.build import export_zip
from training.distributed import Dist
from training.synthfaces import SynthFaces

EVAL = ["eval.every_kimg=0.008", "eval.num_fakes=12", "eval.bootstrap=20", "eval.kid_subsets=5"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny network as ONNX, and as differentiable TorchScript calibrated on 40 people no run trains on
    (by `leakguard matcher calibrate`, which writes MODEL.calibration.json beside it)."""
    folder = tmp_path_factory.mktemp("file_models")
    onnx = onnx_model(folder, "mine.onnx")
    pt = torchscript_model(folder, "mine.pt", differentiable=True)
    people = export_zip(folder / "calib.zip", SynthFaces(32, num_identities=40, images_per_identity=4,
                                                         identity_offset=300, seed=0))
    assert main(["matcher", "calibrate", "--matcher", "mine", "--weights", str(pt), "--data", str(people),
                 "--cache", str(folder / "cache")]) == 0
    return {"onnx": onnx, "pt": pt}


def test_an_onnx_model_with_a_spec_is_audited_during_training_under_its_name(tmp_path, models):
    cfg = tiny_config(tmp_path, *EVAL, "train.kimg=0.008", f"eval.matchers=[mine={models['onnx']}]",
                      f"eval.cache={tmp_path / 'cache'}")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    loop.train(cfg, Dist(), run_dir)
    (line,) = [json.loads(s) for s in (run_dir / "eval.jsonl").read_text().splitlines()]
    assert line["nimg"] == 8 and set(line["audit"]) == {"mine"}
    audit = line["audit"]["mine"]
    assert audit["version"] == FileMatcher(models["onnx"], name="mine").version
    assert [row["fmr"] for row in audit["leakage"]] == cfg.eval.fmrs
    assert all(0 <= row["leak_rate"] <= 1 for row in audit["leakage"])


def test_eval_matchers_refuse_a_name_without_a_spec_at_the_dry_run(tmp_path, models, capsys):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(models["onnx"].read_bytes())                  # the model, but no spec beside it
    common = ["train", "--dry-run", *TINY, f"run_dir={tmp_path / 'runs'}", *EVAL]
    assert main([*common, f"eval.matchers=[mine={models['onnx']}]"]) == 0
    capsys.readouterr()
    assert main([*common, f"eval.matchers=[mine={bare}]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "eval.matchers: unknown matcher 'mine'" in err and "no such model file with a spec" in err
    assert not (tmp_path / "runs").exists()


def leak_config(tmp_path, weights, *overrides):
    return tiny_config(tmp_path, "leakage_reg.weight=1.0", f"leakage_reg.matchers=[mine={weights}]",
                       "leakage_reg.fmr=0.01", "leakage_reg.interval=2", f"leakage_reg.cache={tmp_path / 'cache'}",
                       *overrides)


def test_a_differentiable_torchscript_model_regularizes_a_tiny_run(tmp_path, models):
    cfg = leak_config(tmp_path, models["pt"], "train.kimg=0.016", "leakage_reg.margin=2.0")  # every fake penalised
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    state = loop.train(cfg, Dist(), run_dir)
    (penalty,) = state.leakage.penalties
    assert isinstance(penalty.matcher, FileMatcher) and penalty.matcher.differentiable
    cal = load_calibration(calibration_path(models["pt"]))
    assert penalty.threshold == pytest.approx(cal.point(0.01).threshold)       # tau from the calibration file
    stats = [json.loads(s) for s in (run_dir / "stats.jsonl").read_text().splitlines()]
    logged = [s for s in stats if "Loss/leak_reg" in s]
    assert logged and all(np.isfinite(s["Loss/leak_reg"]) and s["Loss/leak_reg"] > 0 for s in logged)
    assert all(0 <= s["Leakage/mine/above_threshold"] <= 1 for s in logged)


def test_the_penalty_of_a_torchscript_model_moves_G(tmp_path, models):
    from training.data.loader import open_dataset
    from training.leakage import build_leakage
    from training.report import Reporter
    from training.state import build_state
    from training.steps import fake_chunks, leak_step
    cfg = leak_config(tmp_path, models["pt"], "leakage_reg.margin=2.0")
    dataset = open_dataset(cfg.data)
    state = build_state(cfg, dataset, Dist(), Reporter(None))
    state.leakage = build_leakage(cfg, dataset, state)
    G0 = [p.detach().clone() for p in state.G.synthesis.parameters()]
    D0 = [p.detach().clone() for p in state.D.parameters()]
    leak_step(state, fake_chunks(state), gain=2)
    assert any(not torch.equal(a, b) for a, b in zip(G0, state.G.synthesis.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(D0, state.D.parameters()))


REFUSED = {   # a model the regularizer cannot use -> what the one line says
    "onnx": ({}, r"only TorchScript specs with differentiable: true can be used by the regularizer \(.*tiny\.onnx "
                 r"is a \.onnx model"),
    "onnx claiming gradients": ({"differentiable": True}, r"tiny\.onnx\.matcher\.yaml: differentiable=True; "
                                                          r"expected false: only a TorchScript model"),
    "torchscript without gradients": ({}, r"only TorchScript specs with differentiable: true .*says "
                                          r"differentiable: false"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_model_without_gradients_is_refused_by_the_regularizer_in_one_line(tmp_path, capsys, case):
    spec, message = REFUSED[case]
    models = tmp_path / "models"
    models.mkdir()
    make = torchscript_model if case.startswith("torchscript") else onnx_model
    weights = make(models, **spec)                                              # tiny.pt or tiny.onnx
    with pytest.raises(ConfigError, match=message):
        leak_config(tmp_path, weights)
    runs = tmp_path / "runs"
    overrides = [*TINY, f"run_dir={runs}", "leakage_reg.weight=1", f"leakage_reg.matchers=[mine={weights}]"]
    for command in (["train", "--dry-run"], ["train"]):                         # the dry run and a real start
        assert main([*command, *overrides]) == 2
        out, err = capsys.readouterr()
        assert not out and err.count("\n") == 1 and err.startswith("leakguard train: error: leakage_reg.matchers=")
        assert not runs.exists()
    assert sorted(p.name for p in models.iterdir()) == sorted([weights.name, weights.name + ".matcher.yaml"])


def test_a_model_file_without_a_spec_is_named_in_the_refusal(tmp_path):
    bare = tmp_path / "bare.pt"
    bare.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"expected a differentiable matcher: .*bare\.pt: no such model file with a "
                                          r"spec\)$"):
        leak_config(tmp_path, bare)


def test_a_sweep_judges_with_a_model_file_under_its_name(tmp_path, models, synth_matcher_weights):
    """eval.matchers in a sweep spec takes NAME=MODEL as the built-ins: the trial's eval.jsonl audits with the
    file matcher, and the sweep's row carries its leak rate under that name."""
    OmegaConf.save(OmegaConf.from_dotlist(TINY), tmp_path / "tiny.yaml")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: tiny-file-matcher\nbase: tiny.yaml\nkimg: 0.008\n"
                    "overrides: [train.snapshot_kimg=0.008, train.tick_kimg=0.008]\n"
                    f"eval: {{num_fakes: 12, bootstrap: 20, kid_subsets: 5, matchers: ['mine={models['onnx']}'], "
                    f"fidelity: ['synth={synth_matcher_weights}'], fmrs: [0.1], cache: '{tmp_path / 'cache'}'}}\n"
                    "seeds: [0]\narms:\n  plain: []\n")
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "out")]) == 0
    (row,) = read_rows(tmp_path / "out")
    trial = tmp_path / "out" / "trials" / "plain_s0"
    (line,) = [json.loads(s) for s in (trial / "eval.jsonl").read_text().splitlines()]
    assert line["audit"]["mine"]["version"] == FileMatcher(models["onnx"], name="mine").version
    assert row["status"] == "done"
    assert row["metrics"]["leak@mine@0.1"] == line["audit"]["mine"]["leakage"][0]["leak_rate"]
