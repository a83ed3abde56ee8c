"""One prepared GPU check (issues 19 and 31): measures the device's copy and matmul rates, builds the fused
kernels, runs the CUDA tests under LEAKGUARD_OPS=strict, then times the ops against copy bandwidth, training
rounds at 256 px (fused and reference ops, fp16 on and off, and StyleGAN2-ADA's own --cfg=auto settings for
one GPU, set against its published V100 figures scaled to this device), the private D step of the DP fine-tune
preset against the plain one, the regularized G step against the plain one (bench/regularizer.py), the
10k x 1M top-1 search against the matmul rate and the matchers, model files included: about 8 minutes on one GPU.

Every job is a bench/ script (or pytest) in a process of its own with its own time limit, so a job
that hangs, crashes or poisons the CUDA context is recorded with its error and the rest go on; and
LEAKGUARD_OPS is read from the environment, so the fused and reference variants need separate
processes anyway. DIR/gpu_check.json (strict JSON) and DIR/gpu_check.md (the tables, also printed)
hold the results; DIR/logs/ each job's output, DIR/raw/ each job's own JSON, DIR/models/ the model files.

  bash bench/gpu_check.sh --out gpu_check/                        # on a GPU machine
  bash bench/gpu_check.sh --out gpu_check/ --sections train dp    # only some sections
  bash bench/gpu_check.sh --smoke --out /tmp/gpu_smoke            # CPU, tiny sizes, seconds: the same path
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.gpu_report import markdown, summarise  # noqa: E402
from leakguard.atomic import finite_or_null, write_json, write_text  # noqa: E402

SECTIONS = ("device", "build", "tests", "ops", "train", "dp", "leak_step", "search", "matchers")
# Seconds each job may run (train: per variant). They add up to more than TOTAL_S = 480 (what a 15-minute
# device lease leaves after a machine's start and one partial rerun): most jobs end well inside their limits,
# and where too many run to them the last sections are skipped and say so. The build is generous since nothing
# fused runs without it.
BUDGET_S = {"device": 20, "build": 120, "tests": 110, "ops": 35, "train": 30, "dp": 45, "leak_step": 30,
            "search": 25, "matchers": 40}
SMOKE_BUDGET_S = 60
TOTAL_S = 480
# The training variants: LEAKGUARD_OPS ('' = the fused kernels where they load) and the fp16 switches.
VARIANTS = {
    "fused_fp16": ("", ["model.num_fp16_res=4", "model.conv_clamp=256"]),
    "ref_fp16": ("ref", ["model.num_fp16_res=4", "model.conv_clamp=256"]),
    "fused_fp32": ("", ["model.num_fp16_res=0", "model.conv_clamp=null"]),
    "ref_fp32": ("ref", ["model.num_fp16_res=0", "model.conv_clamp=null"]),
    # stylegan2-ada-pytorch's --cfg=auto for one GPU at 256 px, the setting of its published training times
    # (bench/gpu_report.PUBLISHED): batch 16, mbstd 4, fmaps 0.5 (ffhq256's channel_base), 2 mapping layers,
    # gamma 0.0002 res^2 / batch, EMA batch x 10 / 32 images; augmentation on (p fixed at 0.2: ADA's p moves).
    "auto1_fp16": ("", ["train.batch=16", "model.map_layers=2", "model.mbstd_group=4", "loss.r1_gamma=0.8192",
                        "train.ema_kimg=5", "model.num_fp16_res=4", "model.conv_clamp=256", "augment.mode=fixed",
                        "augment.p=0.2"]),
}
# Each script's arguments: the sizes on the GPU, and tiny CPU stand-ins under --smoke; {out} is the
# --out folder. Training takes batch 32 (the preset's 64 halved to fit its time limit). The private D step is
# the DP fine-tune preset's (D's first 5 blocks frozen, k = 4 images per person, minibatch-stddev groups of 4),
# from random networks on SynthFaces at 256 px (no files needed), with as many expected images as the plain
# step (8 people x 4 = 32), R1 every 4 D steps so that one timed R1 cycle is short.
ARGS = {
    "gpu": {
        "device": ["bench/device_rates.py", "--device", "cuda"],
        "ops": ["bench/ops.py", "--device", "cuda", "--repeats", "10"],
        "train": ["bench/train_step.py", "--config", "configs/ffhq256.yaml", "--rounds", "3", "train.device=cuda",
                  "train.batch=32"],
        "dp": ["bench/dp_step.py", "--config", "configs/ffhq256-dp-finetune.yaml", "--repeats", "2", "--freeze-d", "5",
               "train.device=cuda", "train.init=null", "data.path=null", "data.xflip=false",
               "data.synthfaces.num_identities=128", "data.synthfaces.images_per_identity=4",
               "train.batch=32", "train.batch_gpu=16", "privacy.expected_batch=8", "loss.r1_interval=4"],
        "leak_step": ["bench/regularizer.py", "--config", "configs/ffhq256.yaml", "--rounds", "3", "--matcher",
                      "arcface_torch", "--bank-rows", "70000", "train.device=cuda", "train.batch=32"],
        "search": ["bench/search.py", "--device", "cuda", "--queries", "10000", "--bank", "1000000",
                   "--memory-gib", "4"],
        "matchers": ["bench/matchers.py", "--device", "cuda", "--res", "256", "--batch", "32", "--repeats", "3",
                     "--file-models", "{out}/models", "--calib-images", "2000", "--calib-sampled", "200000",
                     "--calib-repeats", "1"],
    },
    "smoke": {
        "device": ["bench/device_rates.py", "--device", "cpu", "--repeats", "2"],
        "train": ["bench/train_step.py", "--config", "configs/synthfaces32.yaml", "--rounds", "1", "train.device=cpu",
                  "train.batch=8"],
        "dp": ["bench/dp_step.py", "--config", "configs/synthfaces32-dp-scratch.yaml", "--repeats", "1",
               "--freeze-d", "1", "train.device=cpu",
               "data.synthfaces.num_identities=16", "data.synthfaces.images_per_identity=2", "train.batch=8",
               "privacy.expected_batch=4", "loss.r1_interval=2"],
        "leak_step": ["bench/regularizer.py", "--config", "configs/synthfaces32.yaml", "--rounds", "1",
                      "--bank-rows", "100", "train.device=cpu", "train.batch=8"],
        "search": ["bench/search.py", "--device", "cpu", "--queries", "256", "--bank", "8192", "--dim", "64"],
        "matchers": ["bench/matchers.py", "--device", "cpu", "--matchers", "synth", "--res", "64", "--batch", "4",
                     "--repeats", "1", "--file-models", "{out}/models", "--file-arch", "r18",
                     "--calib-images", "200", "--calib-dim", "32", "--calib-sampled", "2000",
                     "--calib-repeats", "1"],
    },
}
# -v writes one line per test as it ends, so a run stopped at its limit still shows what passed (log_counts);
# faulthandler prints the stacks of a test that hangs for a minute; --durations names the slow ones.
TESTS = ["-m", "pytest", "tests", "-m", "cuda", "-v", "-p", "no:cacheprovider", "--continue-on-collection-errors",
         "-o", "faulthandler_timeout=60", "--durations=10"]
# Wide lines: pytest drops a skip's reason from a -v line that would not fit the terminal width.
TESTS_ENV = {"LEAKGUARD_OPS": "strict", "COLUMNS": "400"}
# A -v result line: "tests/x.py::test_y[a] PASSED   [ 12%]", "... SKIPPED (reason)   [ 13%]".
VERBOSE_LINE = re.compile(r"^(\S+::.+?) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)(?: \((.*)\))?\s+\[\s*\d+%\]$")
NO_CUDA = "no CUDA device (--smoke runs on the CPU)"


@dataclass
class Job:
    section: str
    name: str                           # unique: names its files in raw/ and logs/
    argv: list[str]                     # after the Python executable
    budget_s: float
    env: dict[str, str] = field(default_factory=dict)
    output: str = "--json"              # the option the job writes its results with (pytest: --junitxml)
    skip: str | None = None             # why it does not run at all
    needs_kernels: bool = False         # pointless (and a second build) when the build section failed


def plan(smoke: bool, sections: list[str]) -> list[Job]:
    """The jobs of `sections`, in SECTIONS order (the correctness checks first)."""
    sizes = ARGS["smoke" if smoke else "gpu"]
    budget = {s: SMOKE_BUDGET_S for s in SECTIONS} if smoke else BUDGET_S
    cuda_only = NO_CUDA if smoke else None
    # bench/regularizer.py times training.steps.leak_step (plain_s_per_step and regularized_s_per_step, the
    # G step amortised over the lazy interval, with --json).
    no_leak = None if (REPO / "bench" / "regularizer.py").is_file() else "not available (leak_step not built)"
    jobs = {
        "device": [Job("device", "device", sizes["device"], budget["device"])],
        "build": [Job("build", "build", ["bench/gpu_build.py"], budget["build"], skip=cuda_only)],
        "tests": [Job("tests", "tests", TESTS, budget["tests"], dict(TESTS_ENV), "--junitxml",
                      skip=cuda_only, needs_kernels=True)],
        "ops": [Job("ops", "ops", sizes.get("ops", []), budget["ops"], skip=cuda_only, needs_kernels=True)],
        "train": [Job("train", f"train_{name}", sizes["train"] + overrides, budget["train"], {"LEAKGUARD_OPS": mode},
                      needs_kernels=mode == "" and not smoke) for name, (mode, overrides) in VARIANTS.items()],
        "dp": [Job("dp", "dp", sizes["dp"], budget["dp"])],
        "leak_step": [Job("leak_step", "leak_step", sizes["leak_step"], budget["leak_step"], skip=no_leak)],
        "search": [Job("search", "search", sizes["search"], budget["search"])],
        "matchers": [Job("matchers", "matchers", sizes["matchers"], budget["matchers"])],
    }
    chosen = [job for s in SECTIONS if s in sections for job in jobs[s]]
    if smoke:  # one thread: torch's OpenMP threads spin at barriers and crawl when a neighbour takes a core
        for job in chosen:
            job.env["OMP_NUM_THREADS"] = "1"
    return chosen


def run(job: Job, out: Path, limit: float) -> dict:
    """Runs one job in its own process group, killed with its children after `limit` seconds."""
    result = out / "raw" / (job.name + (".xml" if job.output == "--junitxml" else ".json"))
    log = out / "logs" / f"{job.name}.log"
    result.unlink(missing_ok=True)  # a result left by an earlier run must not pass for this one
    argv = [arg.replace("{out}", str(out)) for arg in job.argv]
    cmd = [sys.executable, *argv, job.output, str(result)]
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **job.env}, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
        except BaseException:  # Ctrl-C: the job has its own session, so it would go on holding the GPU
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        if rc is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the job and any workers it started, nothing else
            proc.wait()
    record = {"status": "ok" if rc == 0 else "timeout" if rc is None else "failed",
              "seconds": time.monotonic() - t0, "limit_s": limit,
              "command": " ".join([*(f"{k}={shlex.quote(v)}" for k, v in job.env.items()), "python",
                                   shlex.join([*argv, job.output, str(result.relative_to(out))])]),
              "log": str(log.relative_to(out))}
    if rc != 0:
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-15:]
        record["error"] = (f"ran past its {limit:.0f} s limit" if rc is None
                           else tail[-1] if tail else f"exit status {rc}, no output")
        record["log_tail"] = tail
    if result.is_file():  # pytest writes its report also when tests fail
        record["result"] = junit_counts(result) if result.suffix == ".xml" else json.loads(result.read_text())
    elif job.output == "--junitxml" and rc is None:   # stopped at its limit before writing the report
        record["result"] = {**log_counts(log.read_text(errors="replace")), "partial": True}
    return record


def tally(outcomes) -> dict:
    """Passed, failed, error and skipped counts, the failures with their message, and how many tests each skip
    reason covers, from (test, outcome, text) triples: outcome passed | failed | errors | skipped."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skips = [], {}
    for test, outcome, text in outcomes:
        counts[outcome] += 1
        if outcome == "skipped":
            skips[text] = skips.get(text, 0) + 1
        elif outcome != "passed":
            failures.append({"test": test, "message": text})
    return {**counts, "failures": failures, "skip_reasons": skips}


def junit_counts(path: Path) -> dict:
    """tally() of pytest's JUnit XML: a failure's message is its first line."""
    def outcomes():
        for case in ET.parse(path).getroot().iter("testcase"):
            test = f"{case.get('classname', '')}::{case.get('name', '')}"
            found = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
            if found is None:
                yield test, "passed", ""
                continue
            text = (found.get("message") or "").strip()
            if found.tag == "skipped":
                yield test, "skipped", text
            else:
                first = text.splitlines()
                yield test, "failed" if found.tag == "failure" else "errors", first[0][:300] if first else ""
    return tally(outcomes())


# pytest -v's words for how a test ended, as the JUnit report counts them (xfail as skipped, xpass as passed).
VERBOSE_OUTCOMES = {"PASSED": "passed", "XPASS": "passed", "SKIPPED": "skipped", "XFAIL": "skipped",
                    "FAILED": "failed", "ERROR": "errors"}


def log_counts(text: str) -> dict:
    """tally() of pytest -v output: the tests that ended before the run was stopped."""
    def outcomes():
        for line in text.splitlines():
            m = VERBOSE_LINE.match(line.rstrip())
            if m:
                test, word, reason = m.groups()
                outcome = VERBOSE_OUTCOMES[word]
                yield test, outcome, (reason or word.lower()) if outcome == "skipped" else "see the log"
    return tally(outcomes())


def kernels_missing(done: dict[str, dict]) -> str | None:
    """Why the CUDA kernels are not there, when this run's build section says so; None when it built them
    (a CPU-kernel failure alone does not stop the CUDA jobs) or did not run (the jobs build on first use)."""
    build = done.get("build")
    if build is None or build["status"] in ("ok", "skipped"):
        return None
    if build.get("result", {}).get("kernels", {}).get("cuda", {}).get("error", "no result") is None:
        return None
    return f"the CUDA kernels did not build ({build.get('error', build['status'])}; see the build section)"


def run_all(jobs: list[Job], out: Path, total_s: float) -> dict[str, dict]:
    deadline = time.monotonic() + total_s
    done = {}
    for job in jobs:
        left = deadline - time.monotonic()
        why = (job.skip or (job.needs_kernels and kernels_missing(done))
               or (left < 5 and f"out of time: the {total_s:.0f} s total was spent before it started"))
        print(f"{job.name}: {'skipped, ' + why if why else f'running (limit {min(job.budget_s, left):.0f} s)'}",
              flush=True)
        done[job.name] = {"section": job.section, **({"status": "skipped", "why": why} if why
                                                      else run(job, out, min(job.budget_s, left)))}
        if not why:
            print(f"{job.name}: {done[job.name]['status']} in {done[job.name]['seconds']:.1f} s"
                  + (f": {done[job.name]['error']}" if "error" in done[job.name] else ""), flush=True)
    return done


def environment(device: str) -> dict:
    """What the numbers were measured on."""
    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "cpu_threads": torch.get_num_threads(),
           "commit": _git("rev-parse", "HEAD"), "uncommitted": (_git("status", "--porcelain") or "").splitlines()[:50]}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(device=props.name, device_memory_gib=props.total_memory / 2 ** 30,
                   capability=f"{props.major}.{props.minor}", device_count=torch.cuda.device_count())
    else:
        env["device"] = f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return env


def _git(*args) -> str | None:
    """git's answer in the repository, or None where the copy has no .git (a GPU machine may not)."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.rstrip() if out.returncode == 0 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, metavar="DIR", help="folder for gpu_check.json, gpu_check.md, logs/")
    ap.add_argument("--smoke", action="store_true", help="on the CPU, tiny sizes, skipping the CUDA-only sections")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS, metavar="NAME",
                    help=f"run only these, of: {', '.join(SECTIONS)}")
    ap.add_argument("--total-s", type=float, default=TOTAL_S, help="seconds for everything (default %(default)s)")
    args = ap.parse_args()
    if not 0 < args.total_s < math.inf:
        ap.error(f"--total-s {args.total_s:g}: give a positive number of seconds")
    if not args.smoke and not torch.cuda.is_available():
        ap.error(f"no CUDA device is visible to torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}); "
                 "run this on a GPU machine, or add --smoke for the CPU check of the script itself")
    out = Path(args.out).resolve()  # the jobs run in the repository root
    if out.exists() and not out.is_dir():
        ap.error(f"--out {out}: is a file; give a folder")
    try:
        for sub in ("raw", "logs"):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        ap.error(f"--out {out}: cannot make the folder ({e.strerror})")
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    jobs = run_all(plan(args.smoke, args.sections), out, args.total_s)
    env = environment("cpu" if args.smoke else "cuda")  # after the jobs: no CUDA context held while they run
    report = {"check": "bench/gpu_check.py (issues 19 and 31)", "smoke": args.smoke, "started": started.isoformat(),
              "seconds": time.monotonic() - t0, "total_s": args.total_s, "env": env, "sections": summarise(jobs)}
    report = finite_or_null(report)  # a NaN from a broken job becomes null, not a file that cannot be written
    write_json(out / "gpu_check.json", report)
    table = markdown(report)
    write_text(out / "gpu_check.md", table)
    print("\n" + table)
    bad = [name for name, s in report["sections"].items()
           if s["status"] in ("failed", "timeout", "partial") or "derive_error" in s]
    if bad:
        sys.exit(f"not all went well: {', '.join(bad)} (see {out / 'gpu_check.md'} and the logs in {out / 'logs'})")


if __name__ == "__main__":
    main()
