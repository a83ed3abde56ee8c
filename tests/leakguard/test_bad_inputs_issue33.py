"""Issue 33's bad inputs to the privacy suite's commands: each stops with one line on stderr and exit
status 2, naming the file, flag or value and what would be accepted, and nothing is written or lost.
The PRV accountant's memory is bounded (measured in a subprocess under an address-space limit), a
DP run with evaluation gets its report, and a filter run resumes only from files that agree."""
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leakguard.cli.filter import MAX_COUNT, settings_from
from leakguard.fidelity.extractors import InceptionFeatures
from leakguard.privacy import accountants, epsilon, noise_multiplier
from leakguard.privacy.accountants import (PRV_ARRAYS_PER_MECHANISM, PRV_MAX_CELLS, PRV_WORK_ARRAYS,
                                           AccountantCostError, prv_grid_points)
from tests.leakguard.test_audit_ground_truth import faces
from tests.training.dp.test_dp_training import DP
from tests.training.test_eval_during_training import eval_config
from training import loop, rundir
from training.cli import main
from training.data.build import export_zip
from training.distributed import Dist
from training.synthfaces import SynthFaces

REPO = Path(__file__).resolve().parents[2]


def cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:          # argparse's refusals: usage, then one error line
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, *argv, needle: str, usage: bool = False) -> str:
    """Runs the command, asserts exit 2 and one error line holding `needle` (after argparse's usage lines
    when `usage`), and returns that line."""
    code, _, err = cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    if not usage:
        assert len(lines) == 1, err
    assert lines[-1].startswith(f"leakguard {argv[0]}") and "error:" in lines[-1] and needle in lines[-1], err
    return lines[-1]


def files_under(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 5. the PRV accountant's cost ------------------------------------------------------------------------

LIMIT = PRV_MAX_CELLS * 8 + (512 << 20)   # address space: the accountant's bound, and room for Python's own

MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    from leakguard.privacy.accountants import AccountantCostError, epsilon

    def status(key):  # bytes, from /proc/self/status
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    histories, delta, limit = json.loads(sys.argv[1])
    epsilon([(1.0, 0.01, 10)], 1e-5, "prv")  # the first call's imports and caches, before the limit
    resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + limit, resource.RLIM_INFINITY))
    for history in histories:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # peak RSS (VmHWM) := RSS now
        before, start = status("VmRSS"), time.perf_counter()
        try:
            result = {"epsilon": epsilon([tuple(h) for h in history], delta, "prv")}
        except AccountantCostError as e:
            result = {"refused": str(e)}
        result["seconds"] = time.perf_counter() - start
        result["growth"] = status("VmHWM") - before  # the peak RSS of the call, above the RSS before it
        print(json.dumps(result))
""")


def measure(histories, delta) -> list[dict]:
    """epsilon (or the refusal) of each history in turn, in a fresh process whose address space may grow
    by LIMIT, with the growth of its peak RSS after each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([histories, delta, LIMIT])],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.strip().splitlines()[-len(histories):]]


def largest_accepted(sigma, q, delta, mechanisms=1) -> int:
    """The most steps (per mechanism) whose PRV grid the accountant still accepts, by bisection."""
    def cells(t):
        return prv_grid_points([(sigma, q, t)] * mechanisms, delta) * (PRV_ARRAYS_PER_MECHANISM * mechanisms +
                                                                        PRV_WORK_ARRAYS)
    lo, hi = 1, 2
    while cells(hi) <= PRV_MAX_CELLS:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cells(mid) <= PRV_MAX_CELLS else (lo, mid)
    return lo


def test_the_issues_prv_case_is_refused_in_a_second_with_one_line(capsys):
    start = time.perf_counter()
    line = refused(capsys, "privacy", "epsilon", "-s", "0.1", "-q", "1", "-T", "1000", "--delta", "1e-5",
                   "--accountant", "prv", needle="the prv accountant would need")
    assert time.perf_counter() - start < 10
    assert "use the rdp accountant (--accountant rdp" in line and "sigma=0.1, q=1, 1000 steps" in line
    # training's ledger and the noise search get the same refusal (the same function)
    with pytest.raises(AccountantCostError, match="use the rdp accountant"):
        epsilon([(0.1, 1.0, 1000)], 1e-5, "prv")
    # the rdp accountant answers it
    code, out, _ = cli(capsys, "privacy", "epsilon", "-s", "0.1", "-q", "1", "-T", "1000", "--delta", "1e-5")
    assert code == 0 and out.startswith("epsilon = ")


@pytest.mark.parametrize("sigma, q, delta, mechanisms", [(1.0, 1.0, 1e-5, 1), (0.8, 0.05, 1e-6, 2)])
def test_the_worst_accepted_prv_case_stays_within_its_memory_bound(sigma, q, delta, mechanisms):
    steps = largest_accepted(sigma, q, delta, mechanisms)
    history = [(sigma * (1 + i / 10), q, steps) for i in range(mechanisms)]   # distinct: composed by convolution
    cells = prv_grid_points(history, delta) * (PRV_ARRAYS_PER_MECHANISM * mechanisms + PRV_WORK_ARRAYS)
    assert 0.5 * PRV_MAX_CELLS < cells <= PRV_MAX_CELLS       # about the largest grid the bound lets through
    # twice the steps is past the bound: refused under the limit, before anything is allocated; then the worst
    over, got = measure([[(s, q, 2 * n) for s, q, n in history], history], delta)
    assert "use the rdp accountant" in over["refused"] and over["growth"] < 64 << 20, over
    print(f"PRV worst case, {mechanisms} x (q {q}, {steps} steps): {prv_grid_points(history, delta) / 1e6:.1f}M "
          f"points, peak RSS +{got['growth'] / 2 ** 20:.0f} MiB (bound {PRV_MAX_CELLS * 8 / 2 ** 20:.0f} MiB), "
          f"{got['seconds']:.1f} s")
    assert got.get("epsilon", 0) > 0, got                      # it ran to the end under the address-space limit
    assert got["growth"] <= PRV_MAX_CELLS * 8, got              # within the bound it was sized by


def test_the_noise_search_takes_a_refused_prv_probe_as_too_little_noise(monkeypatch):
    q, steps, delta = 1.0, 200, 1e-5
    want = noise_multiplier(8.0, q, steps, delta, "prv")

    def cells(sigma):  # the PRV grid shrinks as sigma grows
        return prv_grid_points([(sigma, q, steps)], delta) * (PRV_ARRAYS_PER_MECHANISM + PRV_WORK_ARRAYS)
    # a bound that refuses the search's probes below 0.7 x the answer: they are too little noise, as computed
    monkeypatch.setattr(accountants, "PRV_MAX_CELLS", cells(0.7 * want))
    with pytest.raises(AccountantCostError):
        epsilon([(0.6 * want, q, steps)], delta, "prv")
    assert noise_multiplier(8.0, q, steps, delta, "prv") == want
    # a bound that refuses the answer itself: said, naming the rdp accountant, not a larger sigma passed off
    monkeypatch.setattr(accountants, "PRV_MAX_CELLS", cells(1.2 * want))
    with pytest.raises(AccountantCostError, match="use the rdp accountant.*could not look lower"):
        noise_multiplier(8.0, q, steps, delta, "prv")


# --- 6, 12, 15. the report of a DP run with evaluation; a tampered privacy record ---------------------

@pytest.fixture(scope="module")
def dp_run(tmp_path_factory, synth_matcher_weights):
    tmp = tmp_path_factory.mktemp("dp_eval")
    cfg = eval_config(tmp, synth_matcher_weights, "train.kimg=0.008", *DP)
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    loop.train(cfg, Dist(), run_dir)
    return run_dir


def test_report_of_a_dp_run_with_evaluation_lists_its_mechanisms(dp_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(dp_run, run_dir)
    record = torch.load(run_dir / "release.pt", weights_only=True)["extra"]["privacy"]
    assert record["mechanisms"] and isinstance(record["mechanisms"][0], dict)     # the case that crashed
    code, out, err = cli(capsys, "report", run_dir)
    assert code == 0, err
    html = (run_dir / "report.html").read_text()
    m = record["mechanisms"][0]
    assert f"{m['name']}: sigma {m['sigma']:g}, q {m['q']:g}, {m['steps']} steps" in html
    assert "Privacy record" in html and "trained without DP" not in html and "wrote" in out


def test_report_keeps_an_existing_page_unless_forced(dp_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(dp_run, run_dir)
    (run_dir / "report.html").write_text("my notes")
    refused(capsys, "report", run_dir, needle="report.html: the file exists; pass --force to replace it")
    assert (run_dir / "report.html").read_text() == "my notes"
    code, _, err = cli(capsys, "report", run_dir, "--force")
    assert code == 0 and "<h1>" in (run_dir / "report.html").read_text(), err


@pytest.mark.parametrize("key, value, needle", [
    ("epsilon", "lots", "epsilon is 'lots' (str), expected a number >= 0"),
    ("delta", None, "delta is None (NoneType), expected a number in (0, 1)"),
    ("mechanisms", [{"name": "dp_d_step", "sigma": "1", "q": 0.5, "steps": 2}], "mechanisms[0].sigma is '1'"),
    ("covers", "everything", "covers is 'everything' (str), expected a list of texts"),
    ("steps", 2.5, "steps is 2.5 (float), expected a whole number >= 0"),
])
def test_a_tampered_privacy_record_is_one_line_naming_the_file_and_key(dp_run, tmp_path, capsys, key, value, needle):
    run_dir = tmp_path / "run"
    shutil.copytree(dp_run, run_dir)
    release = run_dir / "release.pt"
    data = torch.load(release, weights_only=True)
    data["extra"]["privacy"][key] = value
    torch.save(data, release)
    before = files_under(run_dir)
    line = refused(capsys, "privacy", "show", release, needle=needle)
    assert str(release) in line
    line = refused(capsys, "report", run_dir, needle=needle)
    assert str(release) in line and files_under(run_dir) == before      # no report.html written


def test_privacy_show_of_a_folder_says_it_is_a_folder(tmp_path, capsys):
    refused(capsys, "privacy", "show", tmp_path, needle=f"{tmp_path}: is a folder, not a checkpoint")


# --- 9, 12. numbers the accountants cannot take --------------------------------------------------------

def test_a_huge_target_epsilon_is_refused_naming_the_option(capsys):
    start = time.perf_counter()
    refused(capsys, "privacy", "noise", "-e", "1e300", "-q", "0.01", "-T", "1000", "--delta", "1e-5",
            needle="argument --target-epsilon/-e: '1e300': a target epsilon above 100 bounds nothing", usage=True)
    with pytest.raises(ValueError, match="must be a number in"):
        noise_multiplier(1e300, 0.01, 1000, 1e-5)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("accountant, q, steps", [("rdp", 0.01, 1000), ("prv", 1.0, 10)])
def test_the_noise_search_ends_at_the_largest_target(accountant, q, steps):
    # the bisection is bounded; even at the largest target it takes, it ends within the target
    start = time.perf_counter()
    sigma = noise_multiplier(100, q, steps, 1e-5, accountant)
    assert 100 - 0.011 <= epsilon([(sigma, q, steps)], 1e-5, accountant) <= 100
    assert time.perf_counter() - start < 30


def test_the_prv_accountant_refuses_losses_its_arithmetic_cannot_hold():
    with pytest.raises(AccountantCostError, match="past the 700 where its arithmetic overflows"):
        epsilon([(0.03, 1.0, 1)], 1e-5, "prv")
    assert epsilon([(0.03, 1.0, 1)], 1e-5, "rdp") > 100


@pytest.mark.parametrize("sigma, needle", [("1e-300", "'1e-300': sigma must be at least"),
                                           ("1e300", "'1e300': sigma must be at most")])
def test_extreme_noise_multipliers_are_user_errors(capsys, sigma, needle):
    refused(capsys, "privacy", "epsilon", "-s", sigma, "-q", "0.01", "-T", "1000", "--delta", "1e-5", needle=needle,
            usage=True)


# --- 9, 11, 12, 16. the release filter ------------------------------------------------------------------

@pytest.fixture(scope="module")
def filter_files(tmp_path_factory, synth_matcher_weights):
    """train.zip (30 people x 10) and candidates/: 12 faces of new people."""
    root = tmp_path_factory.mktemp("issue33_filter")
    weights = root / "raw" / "synth.pt"          # a copy without a calibration file: thresholds from train.zip
    weights.parent.mkdir()
    weights.write_bytes(synth_matcher_weights.read_bytes())
    train = export_zip(root / "train.zip", SynthFaces(32, num_identities=30, images_per_identity=10, seed=0))
    folder = root / "candidates"
    folder.mkdir()
    for i, img in enumerate(faces(500, 12, 1)[1]):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"img{i:03d}.png")
    return {"root": root, "train": train, "candidates": folder, "weights": weights}


def filter_args(files, out, *more):
    return ["filter", "--generated", files["candidates"], "--training", files["train"], "--matcher",
            f"synth={files['weights']}", "--fmr", "1e-2", "--out", out, "--cache", files["root"] / "cache",
            "--batch", "4", "--device", "cpu", *more]


@pytest.fixture(scope="module")
def filtered(filter_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("issue33_filtered") / "out"
    assert main([str(a) for a in filter_args(filter_files, out)]) == 0
    return out


def copy_run(filtered, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(filtered, out)
    return out


def test_resume_renders_a_deleted_kept_png_again(filter_files, filtered, tmp_path, capsys):
    out = copy_run(filtered, tmp_path)
    kept = sorted((out / "kept").glob("*.png"))
    assert kept
    pixels = kept[0].read_bytes()
    kept[0].unlink()
    code, _, err = cli(capsys, *filter_args(filter_files, out, "--resume"))
    assert code == 0, err
    assert "1 image(s) named in" in err and "rendered again" in err
    assert np.array_equal(np.asarray(Image.open(kept[0])), np.asarray(Image.open(io.BytesIO(pixels))))
    report = json.loads((out / "filter.json").read_text())
    assert report["kept"] == len(list((out / "kept").glob("*.png"))) == len(kept)


@pytest.mark.parametrize("damage, needle", [
    ("duplicate", "candidates.jsonl:4: repeats candidate 2"),
    ("drop", "candidates.jsonl:3: holds candidate 3 (img003) where candidate 2 belongs"),
    ("garbage", "candidates.jsonl:3: not a JSON line"),
    ("settings", "filter.settings.json: not JSON (line 1"),
])
def test_resume_refuses_files_that_disagree_naming_the_file_and_line(filter_files, filtered, tmp_path, capsys,
                                                                      damage, needle):
    out = copy_run(filtered, tmp_path)
    lines = (out / "candidates.jsonl").read_text().splitlines(keepends=True)
    if damage == "duplicate":
        lines.insert(3, lines[2])
    elif damage == "drop":
        del lines[2]
    elif damage == "garbage":
        lines[2] = "Expecting value\n"
    (out / "candidates.jsonl").write_text("".join(lines))
    if damage == "settings":
        (out / "filter.settings.json").write_text("{not json")
    before = files_under(out)
    line = refused(capsys, *filter_args(filter_files, out, "--resume"), needle=needle)
    assert str(out) in line and "--force" in line
    assert files_under(out) == before                       # nothing written, nothing lost


def test_a_filter_count_no_machine_can_do_is_refused_before_any_work(filter_files, tmp_path, capsys):
    out = tmp_path / "out"
    refused(capsys, "filter", "--generator", filter_files["train"], "--count", str(10 ** 23), "--training",
            filter_files["train"], "--matcher", "synth", "--out", out,
            needle=f"--count {10 ** 23}: more than one filter run can render and keep (at most {MAX_COUNT:,}")
    assert not out.exists()
    # a generator's endless seeds are scored until 10 x --count by default, as the help says
    args = Namespace(count=5, max_candidates=None, fmr=1e-3, dedup=False, batch=4, show_training_images=False)
    assert settings_from(args, 2 ** 32, every=False).max_candidates == 50
    assert settings_from(args, 12, every=True).max_candidates == 12


UNWRITABLE = Path("/sys/kernel/leakguard-issue33/out")


def takes_files(folder: Path) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


@pytest.mark.skipif(not Path("/sys/kernel").is_dir() or takes_files(Path("/sys/kernel")),
                    reason="needs a folder nobody can write in, even root (Linux /sys/kernel)")
def test_an_unwritable_out_is_refused_before_any_work(filter_files, tmp_path, capsys):
    cache = tmp_path / "cache"
    for command in (["filter", "--generated", filter_files["candidates"], "--matcher", "synth"],
                    ["fidelity", "--generated", filter_files["candidates"], "--features", "synth"]):
        start = time.perf_counter()
        refused(capsys, *command, "--training", filter_files["train"], "--out", UNWRITABLE, "--cache", cache,
                needle=f"--out {UNWRITABLE}: cannot write in /sys/kernel")
        assert time.perf_counter() - start < 10 and not cache.exists()


# --- 10, 16. fidelity ------------------------------------------------------------------------------------

def test_fidelity_k_at_least_the_images_is_refused_naming_the_counts(filter_files, tmp_path, capsys):
    out = tmp_path / "fid"
    refused(capsys, "fidelity", "--generated", filter_files["candidates"], "--training", filter_files["train"],
            "--features", f"synth={filter_files['weights']}", "--k", "100000", "--out", out, "--cache",
            tmp_path / "cache", needle="--k 100000: each image's ball reaches its k-th nearest other image of its set")
    code, _, err = cli(capsys, "fidelity", "--generated", filter_files["candidates"], "--training",
                       filter_files["train"], "--features", "synth", "--k", "12", "--out", out)
    assert code == 2 and "(300 real in --training, 12 generated); pass --k 11 or less" in err, err
    assert not out.exists()


def test_fidelity_seed_names_the_option(filter_files, tmp_path, capsys):
    refused(capsys, "fidelity", "--generated", filter_files["candidates"], "--training", filter_files["train"],
            "--features", "synth", "--seed", "-1", "--out", tmp_path / "fid",
            needle="argument --seed: -1: a seed is a whole number from 0 to 2^32 - 1", usage=True)


def test_missing_inception_weights_name_the_option_of_both_commands(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        InceptionFeatures(tmp_path / "inception.pt")
    assert "--features inception=PATH" in str(e.value) and "eval.fidelity=[inception=PATH]" in str(e.value)
