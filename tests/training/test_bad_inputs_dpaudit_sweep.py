"""Issue 33 ("stop cleanly and lose nothing"), the DP audit's and the sweep's cases: a bad input gets one line
naming the flag, key or file and exit 2, and nothing is written or lost (files that existed are byte-identical
afterwards); an interrupted audit resumes instead of training a second run; a refused --force puts the old
audit back; a run is scored only against its own canaries; a sweep folder is held by one `sweep run`; a
trial whose process is gone shows as interrupted; a trial folder without trial.json is named, not skipped
silently; a trial stopped gracefully is interrupted, not failed."""
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from leakguard.folder_lock import LOCK_FILE, FolderLock, process_start
from tests.leakguard.sweep_trials import write_trial
from tests.training.dp.test_dp_training import DP
from tests.training.test_bad_inputs import one_error_line, tree
from tests.training.tiny import TINY
from training import rundir
from training.cli import main
from training.dpaudit import outdir
from training.stop import TrainingStopped
from training.sweep import job
from training.sweep.job import read_trial
from training.sweep.runner import settle

AUDIT = ["dp-audit", "--config", "configs/synthfaces32.yaml", "--unit", "image", "--canary-count", "4"]


def tiny(tmp, *more):
    return [*TINY, f"run_dir={tmp / 'unused'}", "train.kimg=0.016", "train.snapshot_kimg=0.008", *more]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny audit without DP (its --out and its arguments)."""
    root = tmp_path_factory.mktemp("audit")
    args = [*AUDIT, "--out", str(root / "out"), *tiny(root)]
    assert main(args) == 0
    return root / "out", args


def copy_of(finished, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    return out


@pytest.mark.parametrize("config, flags, needles", [
    ("synthfaces32", ["--gradient-canaries", "100000000", *DP], ["--gradient-canaries 100000000", "at most 10000"]),
    ("synthfaces32", ["--gradient-canaries", "5000", *DP, "model.channel_max=8"],
     ["--gradient-canaries 5000", "at most 4653, D's trainable parameters"]),
    ("synthfaces32", ["--unit", "identity", "--canary-images", "3"],
     ["--canary-images 3", "model.mbstd_group=2", "multiple of 2"]),
    ("synthfaces32", ["--canary-count", "100000000000000"], ["--canary-count 100000000000000", "at most 10000"]),
    ("synthfaces32", ["--canary-seed", "-1"], ["--canary-seed -1"]),
    ("synthfaces32", ["data.path=/nonexistent/base.zip"], ["/nonexistent/base.zip"]),
])
def test_a_refused_force_leaves_the_finished_audit_as_it_was(finished, tmp_path, capsys, config, flags, needles):
    out = copy_of(finished, tmp_path)
    before = tree(out)
    assert main(["dp-audit", "--config", f"configs/{config}.yaml", "--canary-count", "4", "--force",
                 "--out", str(out), *tiny(tmp_path), *flags]) == 2
    one_error_line(capsys, *needles)
    assert tree(out) == before
    assert main(["dp-audit", "--rescore", "--out", str(out)]) == 0          # the old audit scores as before
    assert json.loads((out / "report.json").read_text())["scores"] == \
        json.loads((finished[0] / "report.json").read_text())["scores"]


def test_a_refused_run_into_a_fresh_out_writes_nothing(tmp_path, capsys):
    for flags, needle in ((["--canary-count", "100000000000000"], "--canary-count"),
                          (["data.path=/nonexistent/base.zip"], "/nonexistent/base.zip"),
                          (["--unit", "identity", "--canary-images", "3"], "--canary-images 3"),
                          (["train.batch_gpu=3"], "train.batch_gpu=3")):          # refused by the training loop
        assert main([*AUDIT, "--out", str(tmp_path / "out"), *tiny(tmp_path), *flags]) == 2
        one_error_line(capsys, needle)
        assert not (tmp_path / "out").exists()


def test_a_force_refused_once_training_starts_puts_the_old_audit_back(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    before = tree(out)
    assert main([*AUDIT, "--force", "--canary-seed", "5", "--out", str(out), *tiny(tmp_path, "train.batch_gpu=3")]) == 2
    one_error_line(capsys, "train.batch_gpu=3")                          # refused by the training loop itself
    assert tree(out) == before and not (out / outdir.ASIDE).exists()


def test_a_finished_audit_needs_force_and_force_replaces_it_whole(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    before = tree(out)
    assert main([*AUDIT, "--out", str(out), *tiny(tmp_path)]) == 2
    one_error_line(capsys, "report.json exists", "--force", "--rescore")
    assert tree(out) == before
    assert main([*AUDIT, "--force", "--canary-seed", "5", "--out", str(out), *tiny(tmp_path)]) == 0
    record = json.loads((out / "canaries.json").read_text())
    assert record["seed"] == 5 and record == json.loads((out / outdir.RUN / "canaries.json").read_text())
    assert [p.name for p in (out / "runs").iterdir()] == ["audited-0"] and not (out / outdir.ASIDE).exists()
    assert json.loads((out / "report.json").read_text())["canaries"]["included"] == record["included"]


def test_a_run_is_not_scored_against_other_canaries(finished, tmp_path, capsys):
    out = copy_of(finished, tmp_path)
    record = json.loads((out / "canaries.json").read_text())
    record["included"] = [1 - i for i in record["included"]]               # another audit's inclusion
    (out / "canaries.json").write_text(json.dumps(record))
    before = tree(out)
    assert main(["dp-audit", "--rescore", "--out", str(out)]) == 2
    one_error_line(capsys, "does not match the canaries", "audited-0")
    assert tree(out) == before


def test_an_interrupted_audit_is_resumed_in_its_own_run_folder(finished, tmp_path, capsys, caplog):
    """The state kill -9 leaves after the first snapshot (no report, no later snapshot): a rerun with the same
    flags resumes that run; with other flags it is refused."""
    out = copy_of(finished, tmp_path)
    run = out / outdir.RUN
    for name in ("report.json", "report.html"):
        (out / name).unlink()
    first, *later = rundir.list_snapshots(run / rundir.CHECKPOINTS)
    for snap in later:
        snap.unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for folder in (out, run):                            # the killed audit's locks: of the folder and of its run
        (folder / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    before = tree(out)
    assert main([*AUDIT, "--canary-seed", "1", "--out", str(out), *tiny(tmp_path)]) == 2
    one_error_line(capsys, "interrupted audit of other canaries", "canaries.seed")
    assert tree(out) == before
    with caplog.at_level(logging.INFO, logger="leakguard.dp_audit"):
        assert main([*AUDIT, "--out", str(out), *tiny(tmp_path)]) == 0
    assert f"resuming the interrupted audited run {run} from {first}" in caplog.text
    assert [p.name for p in (out / "runs").iterdir()] == ["audited-0"] and not (out / LOCK_FILE).exists()
    assert [s.name for s in rundir.list_snapshots(run / rundir.CHECKPOINTS)] == [first.name, "snapshot-0000000016.pt"]
    report = json.loads((out / "report.json").read_text())
    assert report["scores"] == json.loads((finished[0] / "report.json").read_text())["scores"]  # as if never stopped
    assert main(["dp-audit", "--rescore", "--out", str(out)]) == 0


def test_an_audit_stopped_by_a_signal_says_how_to_go_on(tmp_path, capsys, monkeypatch):
    def stopped(cfg, dist, run_dir, resume=None, audit=None):     # as training.loop.train ends on SIGTERM
        snapshot = run_dir / "checkpoints" / "snapshot-0000000004.pt"
        snapshot.parent.mkdir()
        snapshot.write_bytes(b"")
        raise TrainingStopped("SIGTERM", 4, snapshot, run_dir)

    monkeypatch.setattr("training.loop.train", stopped)
    out = tmp_path / "out"
    assert main([*AUDIT, "--out", str(out), *tiny(tmp_path)]) == 75
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stopped by SIGTERM at 0.004 kimg" in err
    assert "rerun the same `leakguard dp-audit` command to resume the audit" in err
    assert (out / "canaries.json").is_file() and (out / "train.zip").is_file() and not (out / LOCK_FILE).exists()


def test_white_box_canaries_are_not_resumed(tmp_path):
    out = tmp_path / "out"
    record = {"source": "s", "unit": "identity", "seed": 0, "m": 2, "images_per_canary": [2, 2], "identity": [0, 1],
              "included": [1, 0], "audit": {"config": {}, "gradient_canaries": 400, "skip_noise": False,
                                             "run": outdir.RUN}}
    (out / outdir.RUN / "checkpoints").mkdir(parents=True)
    (out / outdir.RUN / "checkpoints" / "snapshot-0000000008.pt").write_bytes(b"")
    for path in (out / "canaries.json", out / outdir.RUN / "canaries.json"):
        path.write_text(json.dumps(record))
    with pytest.raises(FileExistsError, match="--gradient-canaries.*cannot be resumed.*--force"):
        outdir.plan_start(out, record, force=False)
    assert outdir.plan_start(out, record, force=True).kind == "replace"


def test_an_unwritable_out_is_refused_in_one_line(tmp_path, capsys):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    outs = [Path("/proc/self/leakguard-audit")] + ([locked / "out"] if not os.access(locked, os.W_OK) else [])
    for out in outs:                                     # root writes into a 0555 folder: only /proc is refused then
        assert main([*AUDIT, "--out", str(out), *tiny(tmp_path)]) == 2
        one_error_line(capsys, "--out", "cannot write into")
    assert not (locked / "out").exists()


# The sweep

def sweep_spec(root: Path, body: str = "", name: str = "s", extra: str = "") -> Path:
    """A spec of one trial that fails at once (its data file is missing): a sweep run in a few seconds."""
    root.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.from_dotlist(TINY), root / "tiny.yaml")
    path = root / f"{name}.yaml"
    path.write_text(body or f"name: {name}\nbase: tiny.yaml\nkimg: 0.008\neval: {{every_kimg: null}}\n"
                            f"overrides: ['data.path={root / 'missing.zip'}']\n" + extra)
    return path


@pytest.mark.parametrize("body, needles", [
    ("name: ''\nbase: tiny.yaml\nkimg: 1\n", ["name", "''"]),
    ("name: ../../..\nbase: tiny.yaml\nkimg: 1\n", ["name", "'../../..'"]),
    ("name: t\nbase: tiny.yaml\nkimg: 1\nseeds: [-1]\n", ["seeds", "[-1]"]),
    ("- name: t\n- base: tiny.yaml\n", ["a YAML mapping", "not a list"]),
    ("name: t\nbase: tiny.yaml\nkimg: 1e309\n", ["kimg", "inf"]),
    ("name: t\nbase: tiny.yaml\nkimg: 1\neval: {every_kimg: null}\naxes:\n  loss.r1_gamma: [1e309]\n",
     ["loss.r1_gamma=inf", "finite"]),
])
def test_bad_sweep_specs_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, body, needles):
    monkeypatch.chdir(tmp_path)                          # where runs/sweeps/<name> would be
    spec = sweep_spec(tmp_path, body)
    assert main(["sweep", "run", str(spec)]) == 2
    line = one_error_line(capsys, *needles)
    assert str(spec) in line or "trial" in line
    assert not (tmp_path / "runs").exists()
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_a_sweep_folder_is_held_by_one_sweep_run(tmp_path, capsys, caplog):
    spec, out = sweep_spec(tmp_path), tmp_path / "out"
    with FolderLock(out, "sweep folder"):                 # as a first `sweep run` holds it
        assert main(["sweep", "run", str(spec), "--out", str(out)]) == 2
        one_error_line(capsys, "sweep folder is in use by pid", str(os.getpid()))
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]
    assert not out.exists()                              # the refused sweep wrote nothing; the holder's folder is gone
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                             "since": "then", "command": "leakguard sweep run (killed)"}))
    with caplog.at_level(logging.WARNING, logger="leakguard.lock"):
        assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0   # a killed holder's lock is taken over
    assert "took over the lock of a process that is gone" in caplog.text and "(killed)" in caplog.text
    assert not (out / LOCK_FILE).exists() and read_trial(out / "trials" / "base_s0")["status"] == "failed"


def test_a_running_trial_refuses_a_rerun_and_a_dead_one_shows_as_interrupted(tmp_path, capsys):
    spec, out = sweep_spec(tmp_path), tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0
    folder = out / "trials" / "base_s0"
    # a process of this machine whose command line is a trial's, as a sweep killed without its trial leaves
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "training.sweep.job"])
    try:
        job.update_trial(folder, status="running", host=socket.gethostname(), pid=stand_in.pid,
                         started_ticks=process_start(stand_in.pid))
        before = tree(out)
        capsys.readouterr()
        assert main(["sweep", "run", str(spec), "--out", str(out)]) == 2
        one_error_line(capsys, "trial base_s0 is running", f"pid {stand_in.pid}")
        assert tree(out) == before
        assert main(["sweep", "status", str(out)]) == 0
        assert "base_s0  running" in capsys.readouterr().out
    finally:
        stand_in.kill()
        stand_in.wait()
    assert main(["sweep", "status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "1 interrupted" in shown and "base_s0  interrupted" in shown and f"pid {stand_in.pid}" in shown
    assert "is gone" in shown


def test_a_trial_folder_without_trial_json_is_named(tmp_path, capsys, caplog):
    sweep = tmp_path / "sweep"
    write_trial(sweep, "a_s0", "a", {"x": 1}, 0, status="pending")
    (sweep / "trials" / "stray").mkdir()
    with caplog.at_level(logging.WARNING, logger="leakguard.sweep"):
        assert main(["sweep", "report", str(sweep)]) == 0
    assert "1 trials tabulated" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if "stray" in r.getMessage()]
    assert len(warnings) == 1 and "no trial.json" in warnings[0] and "left out of the table" in warnings[0]
    assert main(["sweep", "status", str(sweep)]) == 0
    assert "stray: no trial.json, not counted" in capsys.readouterr().out


def test_a_gracefully_stopped_trial_is_interrupted_not_failed(tmp_path, monkeypatch):
    spec, out = sweep_spec(tmp_path), tmp_path / "out"
    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0
    folder = out / "trials" / "base_s0"

    def stop(cfg, dist, run_dir, resume=None, audit=None):   # as training.loop.train ends on SIGTERM
        raise TrainingStopped("SIGTERM", 4, run_dir / "checkpoints" / "snapshot-0000000004.pt", run_dir)

    monkeypatch.setattr("training.loop.train", stop)
    assert job.main([str(out), "base_s0"]) == job.STOPPED == 75
    record = read_trial(folder)
    assert record["status"] == "interrupted" and "stopped by SIGTERM" in record["error"]
    assert "resumes it from its snapshot" in record["error"]
    # a trial process that exits 75 before it says so is settled as interrupted too; another status as failed
    job.update_trial(folder, status="running")
    settle(folder, job.STOPPED, "its process")
    assert read_trial(folder)["status"] == "interrupted"
    job.update_trial(folder, status="running")
    settle(folder, 1, "its process")
    assert read_trial(folder)["status"] == "failed"
