"""Issue 13, the cases done so far: a bad input gets one line naming the option, file or key, exit
code 2, and nothing on disk changes (files that existed are byte-identical afterwards)."""
import hashlib
from pathlib import Path

import pytest

from tests.conftest import load_fixture
from tests.training.official_pickles import official_snapshot
from tests.training.tiny import TINY
from training.checkpoint import save_networks
from training.cli import main
from training.cli.generate import random_generator


def tree(folder: Path) -> dict:
    """Every file under folder and a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys, *needles) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("leakguard ") and ": error: " in lines[0], err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    args = ["train", *TINY, f"run_dir={root / 'runs'}", "name=base", "train.kimg=0.008", "train.snapshot_kimg=0.008"]
    assert main(args) == 0
    return root, root / "runs" / "base-0", args


def test_a_refused_resume_changes_nothing_in_the_run_folder(base_run, capsys):
    root, run_dir, args = base_run
    before = tree(run_dir)
    snap = sorted((run_dir / "checkpoints").glob("snapshot-*.pt"))[-1]
    assert main([*args, "model.channel_max=32", "--resume", str(snap)]) == 2
    one_error_line(capsys, "cannot resume", "model.channel_max")
    assert tree(run_dir) == before
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["base-0"]   # and no empty new folder


def test_a_refused_start_leaves_no_empty_run_folder(tmp_path, capsys):
    assert main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "name=x", "data.path=" + str(tmp_path / "no.zip")]) == 2
    one_error_line(capsys, "no.zip")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_overrides_after_an_option_are_overrides(tmp_path, capsys):
    assert main(["train", *TINY, "--dry-run", "name=after", "train.kimg=0.2"]) == 0
    out = capsys.readouterr().out
    assert "name: after" in out and "kimg: 0.2" in out


def test_convert_never_replaces_a_file_silently_nor_its_input(tmp_path, capsys):
    meta, d = load_fixture("g32c")
    pkl = tmp_path / "net.pkl"
    pkl.write_bytes(official_snapshot(meta, d))
    existing = tmp_path / "existing.pt"
    existing.write_bytes(b"mine")
    before = tree(tmp_path)
    assert main(["convert", str(pkl), str(existing)]) == 2
    one_error_line(capsys, str(existing), "--force")
    assert main(["convert", str(pkl), str(pkl)]) == 2
    one_error_line(capsys, "that is the input file")
    assert tree(tmp_path) == before
    assert main(["convert", str(pkl), str(existing), "--force"]) == 0
    assert existing.read_bytes()[:2] == b"PK"


def test_matcher_train_keeps_an_existing_matcher(tmp_path, capsys):
    out = tmp_path / "victim.pt"
    out.write_bytes(b"weights")
    Path(f"{out}.calibration.json").write_text("{}")
    before = tree(tmp_path)
    assert main(["matcher", "train", "--data", str(tmp_path / "missing.zip"), "--arch", "synth",
                 "--out", str(out)]) == 2
    one_error_line(capsys, str(out), "--force")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("seeds,needle", [("0-99999999999", "above the largest seed"),
                                          ("0-2000000", "more than 1,000,000 seeds"),
                                          ("5,5", "seed 5 is given twice")])
def test_seed_lists_are_bounded_and_distinct(tmp_path, capsys, seeds, needle):
    for command in (["generate", "--random-init", "--outdir", str(tmp_path / "o")],
                    ["audit", "--generator", "G.pt", "--training", "t.zip", "--matcher", "synth", "--out", "r"]):
        with pytest.raises(SystemExit) as e:                 # argparse: usage, then the one error line
            main([*command, "--seeds", seeds])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "argument --seeds" in err and needle in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("device", ["banana", "cuda:abc"])
def test_a_bad_device_is_named(tmp_path, capsys, device):
    assert main(["generate", "--random-init", "--device", device, "--outdir", str(tmp_path / "o")]) == 2
    one_error_line(capsys, f"--device {device}")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_truncation_must_be_finite(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["generate", "--random-init", f"--trunc={value}", "--outdir", str(tmp_path / "o")])
    assert e.value.code == 2 and "must be a finite number" in capsys.readouterr().err


def test_outputs_that_are_files_where_folders_belong(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    assert main(["generate", "--random-init", "--outdir", str(a_file)]) == 2
    one_error_line(capsys, "--outdir", "is a file")
    generator = tmp_path / "G.pt"
    save_networks(generator, {"G_ema": random_generator(32, 0)})
    for option in ("--out", "--cache"):
        args = ["audit", "--generator", str(generator), "--seeds", "0-3", "--training", str(tmp_path / "t.zip"),
                "--matcher", "synth", "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")]
        args[args.index(option) + 1] = str(a_file)
        assert main(args) == 2
        one_error_line(capsys, option, "is a file")
    assert a_file.read_text() == "keep"


def test_a_bug_is_one_line_pointing_at_its_traceback(monkeypatch, tmp_path, capsys):
    from training.cli import generate
    def boom(args):
        raise KeyError("unexpected")
    monkeypatch.setattr(generate, "run", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main(["generate", "--random-init", "--outdir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "this is a bug in LeakGuard" in err and "Traceback" not in err
    (trace,) = tmp_path.glob("leakguard-generate-*.traceback.txt")
    assert "KeyError: 'unexpected'" in trace.read_text()


def test_a_kernel_cache_that_is_a_file_falls_back_to_the_reference(tmp_path):
    import os
    import subprocess
    import sys
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    done = subprocess.run([sys.executable, "-m", "training.cli", "doctor"], capture_output=True, text=True,
                          env={**os.environ, "LEAKGUARD_OPS_CACHE": str(cache)}, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"the kernel cache {cache} is a file, not a folder" in done.stdout
    assert cache.read_text() == "not a folder"


def test_a_malicious_file_is_refused_without_advice_to_load_it_unsafely(tmp_path, capsys):
    import os

    import torch

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "leakguard.networks/1", "x": Payload()}, evil)
    for command in (["generate", "--network", str(evil), "--outdir", str(tmp_path / "o")],
                    ["train", *TINY, f"run_dir={tmp_path / 'runs'}", "--resume", str(evil)]):
        assert main(command) == 2
        line = one_error_line(capsys, str(evil), "posix.system", "nothing was run")
        assert "weights_only=False" not in line and "weights_only` set to `False" not in line
    assert not (tmp_path / "pwned").exists()


def test_resume_auto_skips_a_damaged_snapshot_and_cleans_killed_writes(base_run, tmp_path, caplog):
    import shutil
    root, run_dir, args = base_run
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "base-0")
    folder = runs / "base-0" / "checkpoints"
    (intact,) = sorted(folder.glob("snapshot-*.pt"))
    damaged = folder / "snapshot-0000000999.pt"
    damaged.write_bytes(intact.read_bytes()[:1000])              # a newer snapshot, cut short
    stale = folder / ".snapshot-0000000500.pt.x1y2.tmp"          # left by a killed write
    stale.write_bytes(b"half")
    resume = [a for a in args if not a.startswith(("run_dir=", "train.kimg="))]
    with caplog.at_level("WARNING", logger="leakguard.train"):
        assert main([*resume, f"run_dir={runs}", "train.kimg=0.016", "--resume", "auto"]) == 0
    assert f"skipped {damaged}" in caplog.text and f"resuming from {intact}" in caplog.text
    assert not stale.exists() and not list(folder.glob("*.tmp"))
    assert (folder / "snapshot-0000000016.pt").is_file()


def test_a_minibatch_stddev_misfit_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "name=mb", "train.batch=6",
                 "model.mbstd_group=4"]) == 2
    one_error_line(capsys, "train.batch_gpu=6", "model.mbstd_group=4")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_short_zip_run_warns_of_nothing(tmp_path, capsys):
    import warnings
    assert main(["synthfaces", "--out", str(tmp_path / "s.zip"), "--resolution", "32", "--identities", "6"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the NumPy-not-writable and tqdm clamping warnings, among others
        assert main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "name=z", f"data.path={tmp_path / 's.zip'}",
                     "train.kimg=0.01", "train.progress=true"]) == 0
    assert "clamping" not in capsys.readouterr().err


def test_outputs_that_exist_are_kept_unless_force(tmp_path, capsys):
    zip_path = tmp_path / "faces.zip"
    zip_path.write_bytes(b"my data")
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "seed0001.png").write_bytes(b"my image")
    report = tmp_path / "r"
    report.mkdir()
    (report / "report.json").write_text("{}")
    before = tree(tmp_path)
    cases = [(["synthfaces", "--out", str(zip_path), "--identities", "2"], "--out"),
             (["dataset", "--source", str(outdir), "--dest", str(zip_path)], "--dest"),
             (["generate", "--random-init", "--seeds", "0-2", "--outdir", str(outdir)], "seed0001.png"),
             (["audit", "--generated", str(outdir), "--training", str(zip_path), "--matcher", "synth",
               "--out", str(report)], "report.json")]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        one_error_line(capsys, needle, "--force")
    assert tree(tmp_path) == before
    assert main(["generate", "--random-init", "--seeds", "0-2", "--outdir", str(outdir), "--force"]) == 0
    assert (outdir / "seed0001.png").read_bytes()[:4] == b"\x89PNG"


def test_matcher_train_force_replaces_the_weights_and_drops_their_stale_calibration(tmp_path, capsys):
    assert main(["synthfaces", "--out", str(tmp_path / "people.zip"), "--resolution", "32", "--identities", "4",
                 "--images-per-identity", "4"]) == 0
    out = tmp_path / "victim.pt"
    out.write_bytes(b"old weights")
    stale = Path(f"{out}.calibration.json")
    stale.write_text("{}")
    assert main(["matcher", "train", "--data", str(tmp_path / "people.zip"), "--arch", "synth", "--out", str(out),
                 "--epochs", "1", "--force"]) == 0
    assert out.read_bytes()[:2] == b"PK" and not stale.exists()
