"""Running sweeps of tiny trials: a failing trial recorded while the rest finish; a rerun that redoes
nothing finished; a sweep killed mid-trial that, rerun, resumes the interrupted trial from its snapshot
and ends exactly where an uninterrupted trial ends; trials through submitit's local executor landing in
the same table as local ones; a changed trial config refused on a rerun."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from leakguard.sweep.results import read_rows
from tests.training.tiny import TINY
from training import rundir
from training.cli import main
from training.sweep.job import read_trial

REPO = Path(__file__).resolve().parents[2]


def write_spec(root: Path, weights: Path, axes: str, kimg: float = 0.016, extra: str = "", name: str = "spec.yaml"):
    root.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.from_dotlist(TINY), root / "tiny.yaml")
    path = root / name
    path.write_text(f"name: tiny-sweep\nbase: tiny.yaml\nkimg: {kimg}\n"
                    "overrides: [train.snapshot_kimg=0.008, train.tick_kimg=0.008]\n"
                    f"eval: {{num_fakes: 12, bootstrap: 20, kid_subsets: 5, matchers: ['synth={weights}'], "
                    f"fidelity: ['synth={weights}'], cache: '{root / 'cache'}'}}\n" + axes + extra)
    return path


def files_of(folder: Path) -> dict:
    return {p.relative_to(folder): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def final_eval(folder: Path) -> dict:
    return json.loads((folder / "eval.jsonl").read_text().splitlines()[-1])


@pytest.fixture(scope="module")
def failing(tmp_path_factory, synth_matcher_weights):
    root = tmp_path_factory.mktemp("sweep")
    spec = write_spec(root, synth_matcher_weights, "combine: zip\naxes:\n  loss.r1_gamma: [1.0, 2.0, 1.0]\n"
                      f"  data.path: [null, null, '{root / 'missing.zip'}']\n")
    assert main(["sweep", "run", str(spec), "--out", str(root / "out")]) == 0
    return root, spec


def test_a_failing_trial_is_recorded_while_the_others_finish(failing, capsys):
    root, _ = failing
    out = root / "out"
    status = json.loads((out / "status.json").read_text())
    assert status["counts"] == {"pending": 0, "running": 0, "done": 2, "failed": 1, "interrupted": 0}
    bad = next(t for t in status["trials"] if t["status"] == "failed")
    assert "missing.zip" in bad["error"] and (out / "trials" / bad["name"] / "error.txt").is_file()
    rows = {r["trial"]: r for r in json.loads((out / "results.json").read_text())["trials"]}
    assert rows[bad["name"]]["status"] == "failed" and "missing.zip" in rows[bad["name"]]["error"]
    for t in status["trials"]:
        if t["status"] == "done":   # each finished trial evaluated at its last kimg, its numbers in the table
            line = final_eval(out / "trials" / t["name"])
            assert line["nimg"] == 16
            got = rows[t["name"]]
            assert got["status"] == "done" and got["epsilon"] is None
            for leak in line["audit"]["synth"]["leakage"]:
                assert got["metrics"][f"leak@synth@{leak['fmr']:g}"] == leak["leak_rate"]
    assert (out / "report.html").is_file() and (out / "results.csv").is_file()
    assert main(["sweep", "status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "2 done" in shown and "1 failed" in shown and "missing.zip" in shown


def test_a_rerun_redoes_nothing_finished_and_retries_the_failed(failing):
    root, spec = failing
    out = root / "out"
    done = [t for t in (out / "trials").iterdir() if read_trial(t)["status"] == "done"]
    before = {t: files_of(t) for t in done}
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0
    assert {t: files_of(t) for t in done} == before       # not a byte or a modification time changed
    failed = next(t for t in (out / "trials").iterdir() if t not in done)
    assert read_trial(failed)["status"] == "failed"      # tried again, and it fails again, saying why


def test_a_changed_trial_config_is_refused_on_a_rerun(failing, synth_matcher_weights, capsys):
    root, _ = failing
    changed = write_spec(root, synth_matcher_weights, "combine: zip\naxes:\n  loss.r1_gamma: [1.0, 2.0, 1.0]\n"
                         f"  data.path: [null, null, '{root / 'missing.zip'}']\n", kimg=0.024, name="changed.yaml")
    assert main(["sweep", "run", str(changed), "--out", str(root / "out")]) == 2
    err = capsys.readouterr().err
    assert "train.kimg 0.016 -> 0.024" in err and "another config" in err


def test_a_killed_sweep_resumes_the_interrupted_trial_from_its_snapshot(tmp_path, synth_matcher_weights):
    spec = write_spec(tmp_path, synth_matcher_weights, "axes:\n  loss.r1_gamma: [1.0, 2.0, 3.0]\n", kimg=0.064)
    out = tmp_path / "out"
    first, second = out / "trials" / "r1_gamma-1_s0", out / "trials" / "r1_gamma-2_s0"
    sweep = subprocess.Popen([sys.executable, "-m", "training.cli", "sweep", "run", str(spec), "--out", str(out)],
                             cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not ((first / "trial.json").is_file() and read_trial(first)["status"] == "done"
               and rundir.list_snapshots(second / rundir.CHECKPOINTS)):
        assert sweep.poll() is None and time.time() < deadline, "the sweep ended before it could be interrupted"
        time.sleep(0.02)
    os.killpg(sweep.pid, signal.SIGKILL)                   # the sweep and its trial's process, mid-trial
    os.killpg(read_trial(second)["pid"], signal.SIGKILL)   # (each trial runs in a session of its own)
    sweep.wait()
    assert read_trial(second)["status"] == "running"       # as a killed process leaves it
    snapshot = max(s for s in rundir.list_snapshots(second / rundir.CHECKPOINTS) if rundir.damaged(s) is None)
    assert rundir.SNAPSHOT_RE.match(snapshot.name) and int(snapshot.name[9:19]) < 64
    kept = files_of(first)

    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0
    assert files_of(first) == kept                          # the finished trial was not redone
    record = read_trial(second)
    assert record["status"] == "done" and record["resumed_from"] == f"checkpoints/{snapshot.name}"
    assert read_trial(out / "trials" / "r1_gamma-3_s0")["resumed_from"] is None

    # The interrupted trial ends exactly where the same trial run without interruption ends.
    alone = write_spec(tmp_path, synth_matcher_weights, "axes:\n  loss.r1_gamma: [2.0]\n", kimg=0.064, name="one.yaml")
    assert main(["sweep", "run", str(alone), "--out", str(tmp_path / "alone")]) == 0
    whole = tmp_path / "alone" / "trials" / "r1_gamma-2_s0"
    a, b = (torch.load(rundir.list_snapshots(f / rundir.CHECKPOINTS)[-1], weights_only=True) for f in (second, whole))
    for net in ("G", "D", "G_ema"):
        sa, sb = a["networks"][net]["state_dict"], b["networks"][net]["state_dict"]
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), net
    assert a["nimg"] == b["nimg"] == 64
    assert final_eval(second)["audit"] == final_eval(whole)["audit"]


def test_submitit_trials_land_in_the_same_table_as_local_ones(tmp_path, synth_matcher_weights):
    pytest.importorskip("submitit")
    axes = "axes:\n  loss.r1_gamma: [1.0, 2.0]\n"
    out = tmp_path / "out"
    assert main(["sweep", "run", str(write_spec(tmp_path, synth_matcher_weights, axes, extra="seeds: [0]\n")),
                 "--out", str(out)]) == 0
    more = write_spec(tmp_path, synth_matcher_weights, axes, extra="seeds: [0, 1]\n", name="more.yaml")
    assert main(["sweep", "run", str(more), "--out", str(out), "--executor", "submitit-local"]) == 0
    rows = read_rows(out)
    assert [(r["trial"], r["status"]) for r in rows] == [(f"r1_gamma-{g}_s{s}", "done") for g in (1, 2) for s in (0, 1)]
    executors = {t.name: read_trial(t) for t in (out / "trials").iterdir()}
    assert {n: (r["executor"], r["job_id"] is not None) for n, r in executors.items()} == {
        "r1_gamma-1_s0": ("local", False), "r1_gamma-2_s0": ("local", False),
        "r1_gamma-1_s1": ("submitit-local", True), "r1_gamma-2_s1": ("submitit-local", True)}
    assert len(list((out / "submitit").glob("*_result.pkl"))) == 2           # submitit ran exactly the two new ones
    for r in rows:   # every row is the trial's own evaluation, whichever executor ran it
        line = final_eval(out / "trials" / r["trial"])
        assert line["nimg"] == 16
        assert [r["metrics"][f"leak@synth@{x['fmr']:g}"] for x in line["audit"]["synth"]["leakage"]] == \
            [x["leak_rate"] for x in line["audit"]["synth"]["leakage"]]
        assert r["metrics"]["fd@fd_synth"] == line["fidelity"]["fd_synth"]["fd_synth"]
