"""A Private Evolution arm in a sweep: planned and run beside the training trials, judged by the same
evaluation, its row equal to its own eval.jsonl and release.pt; a rerun redoes nothing finished; a changed
or misspelled arm is refused naming the key."""
import json

import pytest

from leakguard.privacy.record import read_privacy_record
from leakguard.sweep.results import read_rows
from tests.training.test_sweep_run import files_of, write_spec
from training.checkpoint import save_networks
from training.cli import main
from training.cli.generate import random_generator
from training.data.build import export_zip
from training.sweep.status import format_status
from training.synthfaces import SynthFaces


def pe_spec(root, weights, arm: str = "epsilon: 4", name: str = "spec.yaml"):
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "public.pt").is_file():
        save_networks(root / "public.pt", {"G_ema": random_generator(32, 0)})
        export_zip(root / "private.zip", SynthFaces(32, num_identities=6, images_per_identity=4))
    pe = (f"pe:\n  eps4: {{generator: '{root / 'public.pt'}', data: '{root / 'private.zip'}', "
          f"embedding: 'synth={weights}', population: 8, iterations: 2, secret_seed: 3, {arm}}}\n")
    return write_spec(root, weights, "axes:\n  loss.r1_gamma: [1.0]\n", extra=pe, name=name)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, synth_matcher_weights):
    root = tmp_path_factory.mktemp("pe_sweep")
    spec = pe_spec(root, synth_matcher_weights)
    assert main(["sweep", "run", str(spec), "--out", str(root / "out")]) == 0
    return root, spec


def test_the_pe_row_is_its_own_evaluation_and_release(swept):
    root, _ = swept
    rows = {r["trial"]: r for r in read_rows(root / "out")}
    assert set(rows) == {"r1_gamma-1_s0", "pe-eps4_s0"}
    row, folder = rows["pe-eps4_s0"], root / "out" / "trials" / "pe-eps4_s0"
    assert row["status"] == "done" and row["overrides"] == {"pe": "eps4"} and row["group"] == "pe-eps4"
    record = read_privacy_record(folder / "release.pt")
    assert row["private"] and row["privacy_unit"] == "identity" and row["epsilon"] == record["epsilon"] <= 4
    final = json.loads((folder / "eval.jsonl").read_text().splitlines()[-1])
    assert final["iteration"] == 2 and final["num_fakes"] == 12          # count defaults to eval.num_fakes
    assert [row["metrics"][f"leak@synth@{x['fmr']:g}"] for x in final["audit"]["synth"]["leakage"]] == \
        [x["leak_rate"] for x in final["audit"]["synth"]["leakage"]]
    assert row["metrics"]["fd@fd_synth"] == final["fidelity"]["fd_synth"]["fd_synth"]
    assert row["kimg"] is None and row["sec_per_kimg"] is None
    # the training trial is in the same table, with the same columns
    assert set(rows["r1_gamma-1_s0"]["metrics"]) == set(row["metrics"])
    assert "pe-eps4_s0" in format_status(root / "out") and "2/2 it" in format_status(root / "out")


def test_a_rerun_redoes_nothing_finished(swept):
    root, spec = swept
    trials = root / "out" / "trials"
    before = {name: files_of(trials / name) for name in ("pe-eps4_s0", "r1_gamma-1_s0")}
    assert main(["sweep", "run", str(spec), "--out", str(root / "out")]) == 0
    after = {name: files_of(trials / name) for name in before}
    assert after == before


def test_a_changed_arm_is_refused_naming_the_key(swept, synth_matcher_weights, capsys):
    root, _ = swept
    changed = pe_spec(root, synth_matcher_weights, arm="epsilon: 2", name="changed.yaml")
    assert main(["sweep", "run", str(changed), "--out", str(root / "out")]) == 2
    assert "epsilon 4 -> 2" in capsys.readouterr().err


@pytest.mark.parametrize("arm, message", [("epsilon: 4, colour: red", "pe.eps4.colour: unknown key"),
                                          ("epsilon: 4, seed: 1", "pe.eps4.seed: set by the sweep; use seeds"),
                                          ("epsilon: 0", "pe.eps4: --epsilon 0")])
def test_a_bad_arm_is_refused_before_anything_runs(tmp_path, synth_matcher_weights, capsys, arm, message):
    spec = pe_spec(tmp_path, synth_matcher_weights, arm=arm)
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()
