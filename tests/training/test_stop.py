"""A graceful stop: SIGTERM or SIGINT to `leakguard train` mid-run finishes the round, writes a snapshot, says
where it is in one line (no traceback) and exits 75; `--resume auto` then ends bit-identical to a run that was
never stopped, epsilon included (plain, DP per identity with the regularizer's private bank, evaluation on).
A second signal stops at once. Runs are real processes of the CLI, as a scheduler or Ctrl-C treats them."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.fixtures.seams.make_fixture import MATCHER
from tests.training.dp.test_dp_training import DP
from tests.training.tiny import TINY
from training.cli import main
from training.stop import STOPPED_EXIT, StopSignals

REPO = Path(__file__).resolve().parents[2]
LONG = ["train.kimg=0.096", "train.snapshot_kimg=1000", "train.tick_kimg=0.004"]   # 24 rounds: time to signal
EVAL = ["eval.every_kimg=0.016", "eval.num_fakes=8", "eval.bootstrap=5", "eval.kid_subsets=2",
        f"eval.matchers=[synth={MATCHER}]", f"eval.fidelity=[synth={MATCHER}]"]
LEAK = ["leakage_reg.weight=1.0", f"leakage_reg.matchers=[synth={MATCHER}]", "leakage_reg.interval=2",
        "leakage_reg.bank=centroid", "leakage_reg.bank_noise=3.0"]
RUNS = {"plain": [], "dp": [*DP, *LEAK, "augment.mode=noaug", "train.kimg=0.016"], "eval": EVAL}  # DP: 4 rounds
NIMG = {"plain": 96, "dp": 16, "eval": 96}


def command(root: Path, name: str, *extra: str) -> list[str]:
    cache = [f"eval.cache={root / 'cache'}", f"leakage_reg.cache={root / 'cache'}"]
    return [sys.executable, "-m", "training.cli", "train", *TINY, *LONG, *RUNS[name], *cache,
            f"run_dir={root / 'runs'}", f"name={name}", *extra]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def train_and_signal(root: Path, name: str, signals: list[signal.Signals]) -> subprocess.CompletedProcess:
    """Starts the run, waits until it has trained a few rounds (a stats.jsonl line), sends `signals`."""
    proc = subprocess.Popen(command(root, name), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats = root / "runs" / f"{name}-0" / "stats.jsonl"
    deadline = time.time() + 120
    while lines(stats) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be signalled"
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.01)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def final(run_dir: Path) -> dict:
    snap = sorted((run_dir / "checkpoints").glob("snapshot-*.pt"))[-1]
    data = torch.load(snap, weights_only=True)
    out = {"nimg": data["nimg"], "networks": {k: v["state_dict"] for k, v in data["networks"].items()},
           "optimizers": data["optimizers"]}
    if (run_dir / "release.pt").is_file():
        out["epsilon"] = torch.load(run_dir / "release.pt", weights_only=True)["extra"]["privacy"]["epsilon"]
    return out


def assert_equal(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("name, sig", [("plain", signal.SIGINT), ("dp", signal.SIGTERM), ("eval", signal.SIGTERM)])
def test_a_signal_stops_after_a_snapshot_and_the_resume_is_exact(tmp_path, name, sig):
    stopped = train_and_signal(tmp_path / "stopped", name, [sig])
    assert stopped.returncode == STOPPED_EXIT, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr and "internal error" not in stopped.stderr
    run_dir = tmp_path / "stopped" / "runs" / f"{name}-0"
    snaps = sorted((run_dir / "checkpoints").glob("snapshot-*.pt"))
    assert len(snaps) == 1
    message = [line for line in stopped.stderr.splitlines() if line.startswith("leakguard train: stopped")]
    assert len(message) == 1 and sig.name in message[0] and str(snaps[0]) in message[0], stopped.stderr[-2000:]
    assert f"--resume {run_dir}" in message[0]
    nimg = torch.load(snaps[0], weights_only=True)["nimg"]
    assert 0 < nimg < NIMG[name] and not (run_dir / "release.pt").exists()   # stopped mid-run: no release yet

    assert main(command(tmp_path / "stopped", name, "--resume", "auto")[3:]) == 0   # in this process: the same code
    assert main(command(tmp_path / "whole", name)[3:]) == 0
    a, b = final(run_dir), final(tmp_path / "whole" / "runs" / f"{name}-0")
    assert a["nimg"] == b["nimg"] == NIMG[name]
    assert_equal(a, b)                                   # networks, optimizers and, under DP, epsilon
    assert ("epsilon" in a) == (name == "dp")
    if name == "eval":
        evals = [json.loads(x)["nimg"] for x in (run_dir / "eval.jsonl").read_text().splitlines()]
        assert evals == [16, 32, 48, 64, 80, 96]            # none lost, none twice


def test_a_second_signal_stops_at_once():
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):                         # the handler runs between two bytecodes of this thread
            if signals.received:
                break
        assert signals.received == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # handlers restored
    script = ("import os, signal, time\nfrom training.stop import StopSignals\nwith StopSignals():\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(0.1)\n    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    time.sleep(5)\nprint('not reached')")
    second = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == -signal.SIGTERM and "not reached" not in second.stdout
    assert "SIGTERM received: stopping after the round under way" in second.stderr


def test_a_signalled_sweep_stops_its_trial_after_a_snapshot_and_the_rerun_is_exact(tmp_path):
    from tests.training.test_sweep_run import write_spec
    from training.sweep.job import read_trial
    spec = write_spec(tmp_path, MATCHER, "axes:\n  loss.r1_gamma: [1.0]\n", kimg=0.128)   # 32 rounds
    out, trial = tmp_path / "out", tmp_path / "out" / "trials" / "r1_gamma-1_s0"
    sweep = subprocess.Popen([sys.executable, "-m", "training.cli", "sweep", "run", str(spec), "--out", str(out)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while lines(trial / "stats.jsonl") < 1:
        assert sweep.poll() is None and time.time() < deadline, "the sweep ended before it could be signalled"
        time.sleep(0.05)
    sweep.send_signal(signal.SIGTERM)                        # as a scheduler stops the sweep's job
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == STOPPED_EXIT and "Traceback" not in err, err[-2000:]
    assert "rerun the same `leakguard sweep run`" in err.splitlines()[-1]
    record = read_trial(trial)
    newest = sorted((trial / "checkpoints").glob("snapshot-*.pt"))[-1]
    assert record["status"] == "interrupted" and f"snapshot {newest}" in record["error"]   # the trial's own line
    assert 0 < torch.load(newest, weights_only=True)["nimg"] < 128

    assert main(["sweep", "run", str(spec), "--out", str(out)]) == 0
    assert read_trial(trial)["status"] == "done" and read_trial(trial)["resumed_from"] == f"checkpoints/{newest.name}"
    alone = tmp_path / "alone"
    assert main(["sweep", "run", str(spec), "--out", str(alone)]) == 0
    assert_equal(final(trial), final(alone / "trials" / "r1_gamma-1_s0"))
