"""Evaluation during training: eval.jsonl at the right image counts, numbers equal to a separate
`leakguard audit` / `leakguard fidelity` of the snapshot with the same seeds, the training set embedded
once (not again on resume), a missing file stopping the start, and the DP statement."""
import json

import pytest

from tests.chromium import chromium, coloured_pixels, screenshot, without_images
from tests.training.tiny import tiny_config
from training import loop, rundir
from training.cli import main
from training.data.build import export_zip
from training.distributed import Dist
from training.synthfaces import SynthFaces

EVAL = ["eval.every_kimg=0.008", "eval.num_fakes=12", "eval.bootstrap=20", "eval.kid_subsets=5"]


def eval_config(tmp_path, weights, *overrides):
    return tiny_config(tmp_path, *EVAL, f"eval.matchers=[synth={weights}]", f"eval.fidelity=[synth={weights}]",
                       f"eval.cache={tmp_path / 'cache'}", *overrides)


def lines(run_dir):
    return [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, synth_matcher_weights):
    tmp = tmp_path_factory.mktemp("eval")
    cfg = eval_config(tmp, synth_matcher_weights, "train.kimg=0.016", "train.snapshot_kimg=0.016")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    loop.train(cfg, Dist(), run_dir)
    cached = {p: p.stat().st_mtime_ns for p in (tmp / "cache").glob("*.npy")}
    return tmp, run_dir, cached


def test_eval_jsonl_is_written_at_every_interval(evaluated):
    _, run_dir, cached = evaluated
    got = lines(run_dir)
    assert [line["nimg"] for line in got] == [8, 16]
    assert set(got[0]["audit"]) == {"synth"} and set(got[0]["fidelity"]) == {"fd_synth"}
    assert got[0]["audit"]["synth"]["version"].startswith("synth") and got[0]["num_fakes"] == 12
    assert "privacy" not in got[0]
    # the release filter's "would drop": with one matcher, the audit's leaking fakes at each FMR
    for line in got:
        for row, leak in zip(line["would_drop"], line["audit"]["synth"]["leakage"]):
            assert row["fmr"] == leak["fmr"] and row["of"] == 12
            assert row["count"] == round(leak["leak_rate"] * 12)
    # the training set once under the one matcher (its features serve the audit and fidelity), and the
    # audit's embeddings of each evaluation's fakes
    assert len(cached) == 3


def test_values_at_a_snapshot_equal_a_separate_audit_and_fidelity(evaluated, synth_matcher_weights):
    tmp, run_dir, _ = evaluated
    snap = rundir.list_snapshots(run_dir / rundir.CHECKPOINTS)[-1]
    train = export_zip(tmp / "train.zip", SynthFaces(32, num_identities=6, images_per_identity=4, seed=0))
    common = ["--generator", str(snap), "--seeds", "0-11", "--training", str(train), "--cache", str(tmp / "c2")]
    assert main(["audit", *common, "--matcher", f"synth={synth_matcher_weights}", "--bootstrap", "20",
                 "--out", str(tmp / "audit")]) == 0
    assert main(["fidelity", *common, "--features", f"synth={synth_matcher_weights}", "--kid-subsets", "5",
                 "--out", str(tmp / "fid")]) == 0
    last = lines(run_dir)[-1]
    audit = json.loads((tmp / "audit" / "report.json").read_text())["matchers"]["synth"]
    for ours, theirs in zip(last["audit"]["synth"]["leakage"], audit["leakage"]):
        assert ours["threshold"] == pytest.approx(theirs["threshold"], abs=1e-6)
        assert ours["leak_rate"] == theirs["leak_rate"]
    fid = json.loads((tmp / "fid" / "fidelity.json").read_text())["metrics"]["fd_synth"]
    for key in ("fd_synth", "fd_synth_kid", "fd_synth_precision", "fd_synth_recall"):
        assert last["fidelity"]["fd_synth"][key] == pytest.approx(fid[key], rel=1e-5, abs=1e-7), key


def test_a_resume_does_not_embed_the_training_set_again(evaluated, synth_matcher_weights):
    tmp, run_dir, cached = evaluated
    cfg = eval_config(tmp, synth_matcher_weights, "train.kimg=0.024", "train.snapshot_kimg=0.016")
    snap = rundir.list_snapshots(run_dir / rundir.CHECKPOINTS)[-1]
    loop.train(cfg, Dist(), run_dir, snap)
    assert [line["nimg"] for line in lines(run_dir)] == [8, 16, 24]
    now = {p: p.stat().st_mtime_ns for p in (tmp / "cache").glob("*.npy")}
    assert {p: now[p] for p in cached} == cached and len(now) == len(cached) + 1  # only the new fakes


def test_a_missing_matcher_file_stops_the_start_naming_it(tmp_path):
    missing = tmp_path / "no_such_synth.pt"
    cfg = tiny_config(tmp_path, *EVAL, f"eval.matchers=[synth={missing}]")
    run_dir = tmp_path / "runs" / "tiny-0"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        loop.train(cfg, Dist(), run_dir)
    assert not run_dir.exists()


def test_a_private_run_says_its_evaluation_is_outside_the_guarantee(tmp_path, synth_matcher_weights):
    cfg = eval_config(tmp_path, synth_matcher_weights, "train.kimg=0.008", "privacy.unit=identity",
                      "privacy.noise_multiplier=1.0", "privacy.expected_batch=3", "privacy.max_images_per_identity=2",
                      "privacy.secret_seed=1")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    loop.train(cfg, Dist(), run_dir)
    line = lines(run_dir)[-1]
    assert line["privacy"]["epsilon"] > 0 and "outside the (epsilon, delta) guarantee" in line["privacy"]["note"]


@pytest.mark.parametrize("overrides, message", [
    (["eval.every_kimg=1"], "at least one matcher"),
    (["eval.every_kimg=1", "eval.matchers=[synth]", "eval.num_fakes=1"], "eval.num_fakes=1 is not valid"),
    (["eval.every_kimg=1", "eval.matchers=[synth]", "eval.fmrs=[2]"], "eval.fmrs"),
    (["eval.every_kimg=1", "eval.matchers=[synth]", "eval.members=a.zip"], "both eval.members and eval.nonmembers"),
])
def test_bad_eval_settings_are_refused_naming_the_key(tmp_path, overrides, message):
    from training.config import ConfigError
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path, *overrides)


def test_leakguard_report_writes_one_page_with_the_curves(evaluated, capsys):
    _, run_dir, _ = evaluated
    assert main(["report", str(run_dir)]) == 0
    html = (run_dir / "report.html").read_text()
    assert html.count("<img") == 1 and "data:image/png;base64," in html  # the plots, inline
    assert "leak rate" in html and "fd_synth" in html and "trained without DP" in html
    assert "data.synthfaces" not in html or "synthfaces:" in html  # the config is shown as YAML
    assert "wrote" in capsys.readouterr().out


def test_leakguard_report_on_a_folder_without_evaluations_says_what_to_set(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "train with eval.every_kimg set" in capsys.readouterr().err


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_the_report_renders_its_plots_in_headless_chromium(evaluated, tmp_path):
    _, run_dir, _ = evaluated
    assert main(["report", str(run_dir), "--force"]) == 0   # the page an earlier test wrote is replaced
    page = run_dir / "report.html"
    shown = screenshot(chromium(), page, tmp_path / "report.png")
    # the control: the same page with the plot's data removed renders no curve
    html = page.read_text()
    blank = tmp_path / "no_plot.html"
    blank.write_text(without_images(html))
    control = screenshot(chromium(), blank, tmp_path / "no_plot.png")
    assert shown.shape == control.shape and shown.std() > 10  # a page, not a blank window
    # the control shows at most a broken-image icon's few coloured pixels; the page, every panel's curves
    assert coloured_pixels(control) < 200
    assert coloured_pixels(shown) > coloured_pixels(control) + 2000  # (a 1400x2400 window)
