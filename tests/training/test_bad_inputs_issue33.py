"""Issue 33's training cases: each refusal is one line, exit 2, and leaves nothing behind (no run folder, no
events file); a second process on a run folder is refused naming the first, a stale lock is taken over;
a full disk is the user's error, named; an interrupt of any command is one line."""
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from leakguard.folder_lock import LOCK_FILE, FolderLock
from tests.training.dp.test_dp_training import DP
from tests.training.tiny import TINY, tiny_config
from training import loop, rundir
from training.cli import main
from training.distributed import Dist

EIGHT_PEOPLE = ["data.synthfaces.num_identities=8", "privacy.expected_batch=3"]
CASES = {
    "vacuous delta (case 3)": ([*DP, *EIGHT_PEOPLE, "augment.mode=noaug", "privacy.delta=0.5"],
                               "privacy.delta=0.5 is not below 1/units = 1/8"),
    "runaway D steps (case 9)": ([*DP, "augment.mode=noaug", "privacy.d_steps_per_g=100000000"],
                                 "privacy.d_steps_per_g=100000000"),
    "infinite margin (case 10)": (["leakage_reg.weight=1", "leakage_reg.matchers=[synth=s.pt]",
                                   "leakage_reg.margin=inf"], "leakage_reg.margin=inf"),
    "infinite kimg under DP (case 12)": ([*DP, "augment.mode=noaug", "train.kimg=inf"], "train.kimg=inf"),
    "negative seed (case 13)": (["train.seed=-1"], "train.seed=-1"),
    "secret seed out of range": ([*DP, "augment.mode=noaug", "privacy.secret_seed=-3"], "privacy.secret_seed=-3"),
    "runaway batch (bounded inputs)": (["train.batch=100000000"], "train.batch=100000000"),
    "runaway fakes (bounded inputs)": (["eval.every_kimg=1", "eval.matchers=[synth]", "eval.num_fakes=100000000"],
                                       "eval.num_fakes=100000000"),
    "runaway grid (bounded inputs)": (["train.grid_images=10000000"], "train.grid_images=10000000"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_refused_start_is_one_line_and_leaves_no_run_folder(tmp_path, capsys, name):
    overrides, message = CASES[name]
    code = main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", *overrides])
    err = capsys.readouterr().err
    assert code == 2, err[-1500:]
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err[-1500:]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_trunc_far_out_of_range_is_refused(tmp_path, capsys):
    code = main(["generate", "--random-init", "--trunc", "1e308", "--seeds", "0", "--outdir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--trunc" in err and "internal error" not in err, err[-1500:]


@pytest.mark.parametrize("item", ["eval.matchers=[synth={root}]", "eval.fidelity=[synth={root}]"])
def test_a_folder_for_a_weights_file_is_named_as_a_folder(tmp_path, capsys, item):
    code = main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "eval.every_kimg=1", item.format(root=tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder" in err, err[-1500:]
    assert main(["train", "--config", str(tmp_path)]) == 2 and "is a folder" in capsys.readouterr().err


def test_a_second_process_on_a_run_folder_is_refused_naming_the_first(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "train.kimg=0.008", "train.snapshot_kimg=0.004")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    loop.train(cfg, Dist(), run_dir)
    stats = (run_dir / "stats.jsonl").read_text()
    with FolderLock(run_dir, "training run"):          # as if another `train --resume` were running in it
        code = main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "train.kimg=0.012", "--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2 and f"pid {os.getpid()} on {socket.gethostname()}" in err and "in use" in err, err[-1500:]
    assert (run_dir / "stats.jsonl").read_text() == stats and not (run_dir / LOCK_FILE).exists()


def test_a_stale_lock_of_a_process_that_is_gone_is_taken_over_saying_so(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_FILE).write_text(f'{{"pid": {int(dead.stdout)}, "host": "{socket.gethostname()}", '
                                      f'"since": "earlier", "command": "leakguard train"}}')
    with FolderLock(tmp_path, "training run") as lock:
        assert lock.held and f'"pid": {os.getpid()}' in (tmp_path / LOCK_FILE).read_text()
    assert "took over the lock of a process that is gone" in caplog.text and not (tmp_path / LOCK_FILE).exists()


def test_a_lock_held_on_another_host_is_refused_naming_it(tmp_path):
    (tmp_path / LOCK_FILE).write_text('{"pid": 1, "host": "node-17", "since": "earlier", "command": "x"}')
    with pytest.raises(FileExistsError, match=f"pid 1 on node-17.*delete {tmp_path / LOCK_FILE}"):
        FolderLock(tmp_path, "sweep folder").acquire()


def test_a_full_disk_is_the_users_error_naming_the_file(tmp_path, capsys, monkeypatch):
    import training.loop as training_loop

    def full(state, folder, keep=0):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "snapshot-0000000008.pt"))
    monkeypatch.setattr(training_loop, "save_snapshot", full)
    code = main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "train.kimg=0.008"])
    err = capsys.readouterr().err
    assert code == 2 and "no space left on the device" in err and "snapshot-0000000008.pt" in err, err[-1500:]
    assert "internal error" not in err


def test_an_interrupt_of_any_command_is_one_line(tmp_path, capsys, monkeypatch):
    import training.cli.generate as generate_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(generate_cli, "generate", interrupted)
    code = main(["generate", "--random-init", "--seeds", "0", "--outdir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback():
    snapshot = Path(__file__).resolve().parents[1] / "fixtures" / "seams" / "dp_snapshot.pt"   # has a privacy record
    shell = f"{sys.executable} -m training.cli privacy show --json {snapshot} | head -c 0"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr[-1500:]
    assert done.stderr.strip().splitlines() == [
        "leakguard privacy: error: the output was closed before it was all written"]


def test_dp_audit_fakes_are_bounded_before_anything_is_written(tmp_path, capsys):
    code = main(["dp-audit", "--config", "configs/synthfaces32-dp.yaml", "--fakes", "100000000",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--fakes 100000000: at most 100000" in err and not (tmp_path / "out").exists()
