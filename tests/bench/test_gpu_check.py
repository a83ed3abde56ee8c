"""bench/gpu_check.py, the prepared GPU check (issue 19), run as a user would with --smoke on the CPU: every
section is present, each number is finite and positive, and every ratio is the one its times give, in the
JSON and in the markdown. The GPU-only sections get the same checks from a real pytest report and from
results shaped as their scripts write them."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.gpu_check import SECTIONS, TESTS_ENV, Job, junit_counts, plan, run
from bench.gpu_report import PUBLISHED, V100_PEAK, markdown, summarise
from training.config import check, load_config

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.sh"

def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in a file that must be strict JSON")
    return json.loads(text, parse_constant=refuse)


def positive(x) -> float:
    assert isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0, x
    return x


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """(report, markdown, stdout) of one --smoke run. No C++ compiler is visible, so nothing builds: the
    fused variants fall back to the reference and must say so."""
    out = tmp_path_factory.mktemp("gpu_check") / "out"
    env = {**os.environ, "PYTHON": sys.executable, "CXX": "/nonexistent/c++"}
    env.pop("LEAKGUARD_OPS", None)
    done = subprocess.run(["bash", str(SCRIPT), "--smoke", "--out", str(out)], env=env, cwd=out.parent,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return strict_json((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text(), done.stdout, out


def test_every_section_is_there_with_its_status(smoke):
    report, _, _, out = smoke
    assert report["smoke"] is True and list(report["sections"]) == list(SECTIONS)
    assert report["env"]["torch"] == torch.__version__ and report["env"]["device"].startswith("CPU")
    s = report["sections"]
    for name in ("build", "tests", "ops"):
        assert s[name]["status"] == "skipped" and s[name]["jobs"][name]["why"].startswith("no CUDA device")
    for name in ("device", "train", "dp", "leak_step", "search", "matchers"):
        assert s[name]["status"] == "ok", s[name]
        for job in s[name]["jobs"].values():
            assert (out / job["log"]).is_file() and positive(job["seconds"]) <= job["limit_s"]
    assert positive(report["seconds"]) <= report["total_s"]


def test_training_variants_and_their_ratios(smoke):
    train = smoke[0]["sections"]["train"]
    assert set(train["variants"]) == {"fused_fp16", "ref_fp16", "fused_fp32", "ref_fp32", "auto1_fp16"}
    for name, v in train["variants"].items():
        assert [st["step"] for st in v["steps"]] == ["G step", "D step", "path length", "R1"]
        assert (v["resolution"], v["batch"], v["device"]) == (32, 16 if name == "auto1_fp16" else 8, "cpu")
        amortized = sum(positive(st["sec_per_kimg"]) / st["every"] for st in v["steps"])
        assert positive(v["round_sec_per_kimg"]) == pytest.approx(amortized, rel=1e-12)
        assert v["ops"] == "ref"  # what ran, also where the fused kernels were asked for
        assert ("LEAKGUARD_OPS=ref" if name.startswith("ref") else "no C++ compiler") in v["ops_why"]
    sec = {name: v["round_sec_per_kimg"] for name, v in train["variants"].items()}
    assert [(x["of"], x["over"]) for x in train["speedups"]] == [
        ("fused_fp16", "ref_fp16"), ("fused_fp32", "ref_fp32"), ("fused_fp16", "fused_fp32"), ("ref_fp16", "ref_fp32")]
    for x in train["speedups"]:
        assert positive(x["speedup"]) == pytest.approx(sec[x["over"]] / sec[x["of"]], rel=1e-12)
    # the published V100 range scaled by this machine's measured rates over the V100's peaks (float32 and copy here)
    rates = smoke[0]["sections"]["device"]
    p = train["published"]
    ratios = {"copy_bytes_per_s": rates["copy_bytes_per_s"] / V100_PEAK["copy_bytes_per_s"],
              "float32": rates["matmul_flop_per_s"]["float32"] / V100_PEAK["float32"]}
    assert p["device_vs_v100"] == pytest.approx(ratios, rel=1e-12)
    assert p["expected_sec_per_kimg"] == pytest.approx(
        (PUBLISHED["sec_per_kimg"][0] / max(ratios.values()), PUBLISHED["sec_per_kimg"][1] / min(ratios.values())))
    assert p["measured_sec_per_kimg"] == sec["auto1_fp16"] and p["verdict"] == "faster than"  # a CPU is no V100


def test_dp_search_and_matcher_numbers(smoke):
    s = smoke[0]["sections"]
    dp = s["dp"]
    assert (dp["unit"], dp["r1_interval"], dp["plain_images"]) == ("identity", 2, 8)
    assert positive(dp["private_vs_plain"]) == pytest.approx(
        positive(dp["private_s_per_step"]) / positive(dp["plain_s_per_step"]), rel=1e-12)
    assert positive(dp["vmap_vs_loop"]) == pytest.approx(positive(dp["vmap_s"]) / positive(dp["loop_s"]), rel=1e-12)
    assert dp["freeze_d"] == 1 and positive(dp["frozen_private_vs_plain"]) == pytest.approx(
        positive(dp["private_frozen_s_per_step"]) / positive(dp["plain_frozen_s_per_step"]), rel=1e-12)
    assert dp["per_layer_vs_vmap"] == pytest.approx(positive(dp["per_layer_s"]) / dp["vmap_s"], rel=1e-12)
    search = s["search"]
    assert (search["queries"], search["bank"], search["dim"]) == (256, 8192, 64)
    assert [r["method"].split()[0] for r in search["rows"]] == ["exact", "matmul", "full"]
    exact, alone, full = (r["seconds"] for r in search["rows"])
    for r in search["rows"]:
        assert positive(r["queries_per_s"]) == pytest.approx(256 / positive(r["seconds"]), rel=1e-12)
        assert r["time_vs_full"] == pytest.approx(r["seconds"] / full, rel=1e-12)
        assert r["tflop_per_s"] == pytest.approx(2 * 256 * 8192 * 64 / r["seconds"] / 1e12, rel=1e-12)
    assert search["pct_of_matmul"] == pytest.approx(100 * alone / exact, rel=1e-12)
    assert search["same_top1"] >= 0.99
    synth, script, onnx = s["matchers"]["rows"]
    assert synth["matcher"] == "synth" and synth["dim"] == 128
    assert positive(synth["embed_img_per_s"]) == pytest.approx(4 / positive(synth["embed_s"]), rel=1e-12)
    positive(synth["fwd_bwd_img_per_s"])
    # the file-described matchers: TorchScript (differentiable) and ONNX (onnxruntime, no gradient)
    assert (script["matcher"], script["dim"]) == ("file_pt", 512)
    assert script["weights"] == "iresnet_r18.pt, TorchScript on cpu"
    assert positive(script["fwd_bwd_img_per_s"]) and positive(onnx["embed_img_per_s"])
    assert onnx["weights"] == "iresnet_r18.onnx, onnxruntime CPUExecutionProvider" and onnx["fwd_bwd_img_per_s"] is None
    assert all(positive(c["seconds"]) and positive(c["pairs"]) for c in s["matchers"]["calibration"])


def test_markdown_shows_the_json_numbers_and_is_printed(smoke):
    report, md, stdout, _ = smoke
    assert md == markdown(report) and md in stdout
    s = report["sections"]
    for name in SECTIONS:
        assert f"| {name} | {s[name]['status']} |" in md
    for name, v in s["train"]["variants"].items():
        assert f"| {name} | ref | " in md and f"{v['round_sec_per_kimg']:.3f} |" in md
        if not name.startswith("ref"):
            assert f"- {name} ran the reference ops: no C++ compiler" in md
    assert f"| private dp_d_step | {s['dp']['private_s_per_step'] * 1e3:.1f} |" in md
    assert f"{s['dp']['private_vs_plain']:.2f}x |" in md
    assert f"| private, first 1 D blocks frozen | {s['dp']['private_frozen_s_per_step'] * 1e3:.1f} |" in md
    assert f"per layer {s['dp']['per_layer_vs_loop']:.2f}x and torch.func {s['dp']['vmap_vs_loop']:.2f}x" in md
    assert f"runs at {s['search']['pct_of_matmul']:.0f}% of the float32 matmul rate" in md
    p = s["train"]["published"]
    assert (f"auto1_fp16 (--cfg=auto at 256 px on one GPU, with the reference ops (the kernels did not load)): "
            f"{p['measured_sec_per_kimg']:.2f} sec/kimg, faster than the "
            f"published 21.6-24.2 sec/kimg on a V100 scaled to this device") in md
    assert f"| device | ok | {s['device']['seconds']:.1f} | copy {s['device']['copy_bytes_per_s'] / 1e9:.0f} GB/s" in md
    leak = s["leak_step"]
    assert leak["regularized_vs_plain"] == pytest.approx(positive(leak["regularized_s_per_step"])
                                                         / positive(leak["plain_s_per_step"]), rel=1e-12)
    assert leak["regularized_s_per_step"] == pytest.approx(leak["plain_s_per_step"]
                                                           + positive(leak["leak_s"]) / leak["interval"])


def test_the_gpu_sizes_are_valid_configs():
    """Every training, DP and regularizer job of the GPU run loads and passes the config checks here, so a
    mistyped key or a refused combination is found before device time is spent on it."""
    checked = 0
    for job in plan(smoke=False, sections=list(SECTIONS)):
        if "--config" not in job.argv:
            continue
        config = job.argv[job.argv.index("--config") + 1]
        overrides = [a for a in job.argv if "=" in a and not a.startswith("-")]
        check(load_config(REPO / config, overrides))
        checked += 1
    assert checked == 7   # five training variants, the DP step and the regularized step


def test_the_device_wrapper_brings_back_three_files(tmp_path):
    """bench/gpu_device.sh, as the device call runs it: the report, its tables and one archive of logs/ and raw/
    land in $OUT (the device tool brings back at most 8 files)."""
    out = tmp_path / "OUT"
    out.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "GPU_CHECK_DIR": str(tmp_path / "work"),
           "CXX": "/nonexistent/c++", "LEAKGUARD_WHEELS": str(tmp_path / "no-wheels")}   # this Python has them all
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_device.sh"), "--smoke", "--sections", "device", "search"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md", "gpu_check_files.tgz"]
    report = strict_json((out / "gpu_check.json").read_text())
    assert list(report["sections"]) == ["device", "search"]
    listing = subprocess.run(["tar", "tzf", str(out / "gpu_check_files.tgz")], capture_output=True, text=True).stdout
    assert "logs/search.log" in listing and "raw/device.json" in listing


def test_pytest_reports_are_counted(tmp_path):
    (tmp_path / "test_three.py").write_text(
        "import pytest\n"
        "def test_ok():\n    assert True\n"
        "def test_bad():\n    assert 1 == 2, 'one is not two'\n"
        "def test_later():\n    pytest.skip('needs a CUDA GPU')\n")
    xml = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_three.py"),
                    "--junitxml", str(xml)], cwd=tmp_path, capture_output=True, timeout=120)
    counts = junit_counts(xml)
    assert {k: counts[k] for k in ("passed", "failed", "errors", "skipped")} == {
        "passed": 1, "failed": 1, "errors": 0, "skipped": 1}
    (failure,) = counts["failures"]
    assert failure["test"].endswith("::test_bad") and "one is not two" in failure["message"]
    assert list(counts["skip_reasons"].values()) == [1] and "needs a CUDA GPU" in next(iter(counts["skip_reasons"]))


def test_a_test_run_stopped_at_its_limit_is_counted_from_its_log(tmp_path):
    """The CUDA tests may outrun their limit on a slow first build: the tests that ended still count."""
    (tmp_path / "test_slow.py").write_text(
        "import time, pytest\n"
        "def test_ok():\n    assert True\n"
        "def test_later():\n    pytest.skip('needs a CUDA GPU')\n"
        "def test_hangs():\n    time.sleep(600)\n")
    out = tmp_path / "out"
    for sub in ("raw", "logs"):
        (out / sub).mkdir(parents=True)
    argv = ["-m", "pytest", str(tmp_path / "test_slow.py"), "-v", "-p", "no:cacheprovider"]
    record = run(Job("tests", "tests", argv, 60, env={"COLUMNS": TESTS_ENV["COLUMNS"]}, output="--junitxml"), out,
                 limit=15)
    assert record["status"] == "timeout" and record["error"] == "ran past its 15 s limit"
    r = record["result"]
    assert r["partial"] is True
    assert {k: r[k] for k in ("passed", "failed", "errors", "skipped")} == {
        "passed": 1, "failed": 0, "errors": 0, "skipped": 1}
    assert r["skip_reasons"] == {"needs a CUDA GPU": 1}
    s = summarise({"tests": {"section": "tests", **record}})
    md = markdown({"env": {"device": "GPU", "torch": "x", "cuda": "y"}, "smoke": False, "started": "2026-12-07T00:00",
                   "seconds": 15.0, "total_s": 480, "sections": s})
    assert "1 passed, 0 failed, 0 errors, 1 skipped before it was stopped at its limit (counted from the log)" in md


def test_gpu_only_sections_derive_and_render():
    # Shaped as bench/gpu_build.py, pytest (through junit_counts) and bench/ops.py --device cuda write them.
    ops_rows = [{"op": "bias_act lrelu", "shape": [32, 512, 8, 8], "dtype": "float16", "pass": "fwd", "bytes": 4e6,
                 "ref_s": 4e-4, "fused_s": 1e-4},
                {"op": "upsample x2", "shape": [32, 512, 8, 8], "dtype": "float32", "pass": "fwd+bwd", "bytes": 2e7,
                 "ref_s": 3e-3, "fused_s": 5e-4}]
    jobs = {
        "build": {"section": "build", "status": "ok", "seconds": 80.0, "result": {
            "kernels": {"cpu": {"seconds": 20.0, "error": None}, "cuda": {"seconds": 60.0, "error": None}},
            "doctor": ["..."]}},
        "tests": {"section": "tests", "status": "failed", "seconds": 90.0, "error": "1 failed", "result": {
            "passed": 470, "failed": 1, "errors": 0, "skipped": 2, "skip_reasons": {"fixtures not found": 2},
            "failures": [{"test": "tests.cuda_ops.test_x::test_y[a|b]", "message": "AssertionError: 1e-3 > 1e-5"}]}},
        "ops": {"section": "ops", "status": "ok", "seconds": 30.0, "result": {
            "device": "cuda", "fused": "cuda", "copy_bytes_per_s": 8e10, "rows": ops_rows}},
        "device": {"section": "device", "status": "ok", "seconds": 9.0, "result": {
            "copy_bytes_per_s": 3.0e12,
            "matmul_flop_per_s": {"float32": 5.0e13, "float16": 7.0e14, "bfloat16": 7.1e14}}},
        "train_auto1_fp16": {"section": "train", "status": "ok", "seconds": 25.0, "result": {
            "ops": "cuda", "ops_why": "", "round_sec_per_kimg": 5.0, "steps": [
                {"step": "G step", "sec_per_kimg": 2.0, "every": 1},
                {"step": "D step", "sec_per_kimg": 3.0, "every": 1}]}},
    }
    s = summarise(jobs)
    # V100 datasheet peaks: 900 GB/s, 125 TFLOP/s float16, 15.7 float32; bfloat16 has no V100 peak and is not used
    p = s["train"]["published"]
    assert p["device_vs_v100"] == pytest.approx({"copy_bytes_per_s": 3.0e12 / 900e9, "float16": 7.0e14 / 125e12,
                                                 "float32": 5.0e13 / 15.7e12})
    assert p["expected_sec_per_kimg"] == pytest.approx((21.6 / 5.6, 24.2 / (5.0e13 / 15.7e12)))
    assert p["verdict"] == "within"
    bias, up = s["ops"]["rows"]
    assert bias["vs_ref"] == pytest.approx(4.0) and bias["pct_of_copy"] == pytest.approx(50.0)
    assert up["fused_gb_per_s"] == pytest.approx(40.0) and up["pct_of_copy"] == pytest.approx(50.0)
    assert [(t["worst"], t["best"]) for t in s["ops"]["targets"]] == [(pytest.approx(50.0),) * 2,
                                                                     (pytest.approx(6.0),) * 2]
    assert (s["tests"]["status"], s["tests"]["passed"]) == ("failed", 470)
    md = markdown({"env": {"device": "NVIDIA H200", "torch": "2.11.0+cu130", "cuda": "13.0"}, "smoke": False,
                   "started": "2026-12-03T00:00:00", "seconds": 200.0, "total_s": 480, "sections": s})
    assert "| build | ok | 80.0 | cpu 20.0 s, cuda 60.0 s |" in md
    assert "| tests | failed | 90.0 | 470 passed, 1 failed, 0 errors, 2 skipped |" in md
    assert "| tests.cuda_ops.test_x::test_y[a\\|b] | failed | AssertionError: 1e-3 > 1e-5 |" in md
    assert "| 2 tests | skipped | fixtures not found |" in md
    assert "| bias_act lrelu | [32, 512, 8, 8] | float16 | fwd | 0.40 | 0.10 | 4.00x | 40 | 50% |" in md
    assert "bias_act >= 70% of copy bandwidth: 50.0-50.0" in md
    assert "| device | ok | 9.0 | copy 3000 GB/s; matmul float32 50.0, float16 700.0, bfloat16 710.0 TFLOP/s |" in md
    assert ("auto1_fp16 (--cfg=auto at 256 px on one GPU): 5.00 sec/kimg, within the published 21.6-24.2 sec/kimg "
            "on a V100 scaled to this device: 3.86-7.60") in md
    # a device result without its matmul rates: the comparison says why it is missing, the rest is still written
    jobs["device"]["result"] = {"copy_bytes_per_s": 3.0e12}
    s = summarise(jobs)
    assert "published" not in s["train"] and s["train"]["published_error"] == "KeyError: 'matmul_flop_per_s'"
    md = markdown({"env": {"device": "GPU", "torch": "x", "cuda": "y"}, "smoke": False,
                   "started": "2026-12-07T00:00", "seconds": 1.0, "total_s": 480, "sections": s})
    assert "| train | ok | 25.0 |" in md
    assert "- auto1_fp16 against the published V100 figures: not computed (KeyError: 'matmul_flop_per_s')" in md

def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--out", str(tmp_path / "o"),
                               *args], capture_output=True, text=True, timeout=120)
    bad = run("--smoke", "--sections", "train", "nope")
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr and "matchers" in bad.stderr
    bad = run("--smoke", "--total-s", "0")
    assert bad.returncode == 2 and "--total-s 0: give a positive number" in bad.stderr
    if not torch.cuda.is_available():
        bad = run()
        assert bad.returncode == 2 and "no CUDA device is visible" in bad.stderr and "--smoke" in bad.stderr
    assert not (tmp_path / "o").exists()
