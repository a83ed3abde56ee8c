"""`leakguard dp-audit` end to end on tiny runs: canaries drawn and recorded reproducibly, the training
zip holding exactly the base data and the included canaries, no evaluation (canaries enter no fidelity
reference set), both scores, a bound that never exceeds a DP run's claim; and the test-only switch
that breaks DP (no noise) while the ledger still claims it."""
import json
import zipfile

import numpy as np
import pytest

from tests.training.dp.test_dp_training import DP
from tests.training.tiny import TINY
from training import steps
from training.cli import main
from training.dp.audit_hooks import AuditHooks
from training.dpaudit.canaries import CANARY_OFFSET, inclusion, synthfaces_canaries


def audit(tmp_path, capsys, *extra, overrides=()):
    out = tmp_path / "audit"
    code = main(["dp-audit", "--config", "configs/synthfaces32.yaml", "--out", str(out), *map(str, extra),
                 *TINY, f"run_dir={tmp_path / 'unused'}", "train.kimg=0.016", *overrides])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return out, json.loads((out / "report.json").read_text()), captured.out


def test_a_run_without_dp_is_audited_with_recorded_canaries(tmp_path, capsys, synth_matcher_weights):
    out, report, stdout = audit(tmp_path, capsys, "--unit", "image", "--canary-count", "8", "--canary-seed", "3",
                                "--matcher", f"synth={synth_matcher_weights}", "--fakes", "16")
    record = json.loads((out / "canaries.json").read_text())
    assert record["included"] == inclusion(8, 3).astype(int).tolist() == report["canaries"]["included"]
    assert record["unit"] == "image" and record["images_per_canary"] == [1] * 8
    with zipfile.ZipFile(out / "train.zip") as z:
        meta = json.loads(z.read("dataset.json"))
    ids = [i for _, i in meta["identities"]]
    canary_ids = sorted(i for i in ids if i >= CANARY_OFFSET)
    assert len(ids) == 24 + sum(record["included"])                       # 6 people x 4 + the included canaries
    assert canary_ids == [CANARY_OFFSET + c for c in np.flatnonzero(inclusion(8, 3))]
    run_config = (next((out / "runs").glob("audited-*")) / "config.yaml").read_text()
    assert "every_kimg: null" in run_config                                # no evaluation, no reference set
    assert set(report["scores"]) == {"d_logit", "release"} and report["claimed"] is None
    for name, b in report["bounds"].items():
        assert b["epsilon_lower_bound"] >= 0 and len(report["scores"][name]) == 8
        assert "no claim" in report["verdicts"][name]
    assert "d_logit: epsilon lower bound" in stdout and (out / "report.html").read_text().count("<img") == 2
    # scored again from the last snapshot without training: the same numbers
    assert main(["dp-audit", "--rescore", "--out", str(out), "--matcher", f"synth={synth_matcher_weights}",
                 "--fakes", "16"]) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["scores"] == report["scores"] and again["claimed"] is None


def test_a_private_run_is_never_bounded_above_its_claim(tmp_path, capsys):
    out, report, _ = audit(tmp_path, capsys, "--canary-count", "6", "--canary-images", "2",
                           overrides=[*DP, "privacy.expected_batch=4"])
    claimed = report["claimed"]
    assert claimed["unit"] == "identity" and claimed["epsilon"] > 0
    assert json.loads((out / "canaries.json").read_text())["images_per_canary"] == [2] * 6
    b = report["bounds"]["d_logit"]
    assert b["delta"] == claimed["delta"] and b["epsilon_lower_bound"] <= claimed["epsilon"]
    assert report["verdicts"]["d_logit"].startswith("consistent")
    # scored again from release.pt without training: the same scores, bounds and claim
    assert main(["dp-audit", "--rescore", "--out", str(out)]) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["claimed"] == claimed and again["scores"] == report["scores"] and again["bounds"] == report["bounds"]
    assert main(["dp-audit", "--rescore", "--out", str(tmp_path / "nowhere")]) == 2
    assert main(["dp-audit", "--rescore", "--config", "configs/synthfaces32.yaml", "--out", str(out)]) == 2
    assert main(["dp-audit", "--out", str(out)]) == 2                       # neither --config nor --rescore
    err = capsys.readouterr().err
    assert "no canary record" in err and "takes neither --config" in err and "--config: the training preset" in err


def test_canaries_are_reproducible_and_stand_out():
    a, b = synthfaces_canaries(5, 3, 32, seed=1), synthfaces_canaries(5, 3, 32, seed=1)
    assert np.array_equal(a.images, b.images) and len(a) == 5
    from training.synthfaces import SynthFaces
    plain = SynthFaces(32, num_identities=5, images_per_identity=3, identity_offset=CANARY_OFFSET, seed=1)
    changed = (a.images != plain.render_all().transpose(0, 2, 3, 1)).any(axis=3)   # [N, H, W] patched pixels
    assert all(36 <= changed[i].sum() <= 49 for i in range(len(changed)))        # a 6x6 patch (some pixels equal)
    assert all(np.array_equal(changed[3 * c], changed[3 * c + 1]) for c in range(5))  # same place per person



def test_the_broken_switch_skips_the_noise_and_the_ledger_still_claims_it(tmp_path, monkeypatch):
    from tests.training.dp.test_dp_training import run
    calls = []
    monkeypatch.setattr(steps, "add_noise", lambda *a: calls.append(1))
    state, _ = run(tmp_path, 0.004)
    assert len(calls) == state.privacy.ledger.steps() > 0                  # the correct step adds noise each time
    calls.clear()
    state, _ = run(tmp_path / "broken", 0.004, audit=AuditHooks(skip_noise=True))
    assert calls == [] and state.privacy.ledger.steps() > 0 and state.privacy.ledger.epsilon() > 0


def test_a_unit_other_than_the_configs_is_refused(tmp_path, capsys):
    code = main(["dp-audit", "--config", "configs/synthfaces32-dp.yaml", "--unit", "image", "--out",
                 str(tmp_path / "o")])
    assert code == 2 and "--unit image: the config's privacy.unit is 'identity'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--canary-count", "1"], ["--fakes", "0"], ["--canary-images", "0"]])
def test_bad_numbers_are_refused(tmp_path, capsys, flag):
    assert main(["dp-audit", "--config", "configs/synthfaces32.yaml", *flag, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{flag[0]} {flag[1]}: must be at least" in err
    assert not (tmp_path / "o").exists()


def test_white_box_canaries_catch_a_run_that_skips_the_noise(tmp_path, capsys, monkeypatch):
    """The same tiny DP run (sigma 16: a claim well under 1) with 400 Dirac gradient canaries, correct and with
    the noise skipped: the correct run's bound stays at or below its claim; the broken run's refutes it."""
    overrides = [*DP, "privacy.expected_batch=4", "privacy.noise_multiplier=16", "train.kimg=0.064"]
    flags = ["--canary-count", "6", "--canary-images", "2", "--gradient-canaries", "400"]
    _, report, _ = audit(tmp_path / "correct", capsys, *flags, overrides=overrides)
    claim = report["claimed"]["epsilon"]
    white = report["bounds"]["gradient"]
    assert 0 < claim < 1 and white["epsilon_lower_bound"] <= claim and report["verdicts"]["gradient"].startswith("consistent")
    record = report["gradient_canaries"]
    assert record["m"] == 400 and record["steps"] == 16 and len(report["scores"]["gradient"]) == 400
    assert white["tests"] == 2 * len(white["tried"])             # two scores (D logit, gradient) share the 5%
    monkeypatch.setenv("LEAKGUARD_BROKEN_DP", "skip-noise")
    out, broken, _ = audit(tmp_path / "broken", capsys, *flags, overrides=overrides)
    assert broken["claimed"]["epsilon"] == pytest.approx(claim)    # the ledger claims the same
    caught = broken["bounds"]["gradient"]
    assert caught["best"]["correct"] == caught["best"]["guesses"] and caught["epsilon_lower_bound"] > 3 * claim
    assert broken["verdicts"]["gradient"].startswith("VIOLATED")
    # white-box scores are observed while training: --rescore keeps them as they were
    assert main(["dp-audit", "--rescore", "--out", str(out)]) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["scores"]["gradient"] == broken["scores"]["gradient"] and again["bounds"] == broken["bounds"]


def test_white_box_canaries_need_a_dp_run(tmp_path, capsys):
    code = main(["dp-audit", "--config", "configs/synthfaces32.yaml", "--unit", "image", "--gradient-canaries", "50",
                 "--out", str(tmp_path / "a"), *TINY, "train.kimg=0.008"])
    assert code == 2 and "without DP" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(["dp-audit", "--config", "configs/synthfaces32-dp.yaml", "--gradient-canaries", "1",
                 "--out", str(tmp_path / "b")]) == 2
    assert "--gradient-canaries 1: must be at least 2" in capsys.readouterr().err
