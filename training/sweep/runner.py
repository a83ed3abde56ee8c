"""Running a sweep: plan its trials in the sweep folder, run those not finished, tabulate.

    SWEEP/spec.yaml             the spec as given, with the command line's overrides
    SWEEP/status.json           every trial's state, rewritten as trials finish
    SWEEP/trials/<name>/        each trial's run folder and trial.json (training.sweep.job)
    SWEEP/results.csv|json, report.html    leakguard.sweep, over the trial folders
    SWEEP/submitit/             submitit's job files and logs (executor submitit-local or slurm)

A rerun skips finished trials, resumes interrupted ones from their latest snapshot and retries failed
ones; a trial planned before must still resolve to the same config (else it is refused, naming the
trial and the keys), so one folder never mixes two settings under one name. A failing trial is
recorded with its error while the others go on.
"""
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from leakguard import run_files
from leakguard.atomic import write_json, write_text
from training.config import ConfigError, changed_keys, flatten, to_dict
from training.sweep.job import TRIAL_FILE, TRIALS, TrialJob, now, read_trial, trial_dir, update_trial
from training.sweep.spec import SweepSpec, Trial, expand

log = logging.getLogger("leakguard.sweep")
UNFINISHED = ("pending", "running", "failed")
RUN_KEYS = ("name", "run_dir", "resume")    # where a trial runs, not what it trains: not compared on a rerun


def plan(spec: SweepSpec, spec_text: str, out: Path) -> list[Trial]:
    """The sweep folder with a trial folder (trial.json, status pending) for each trial not planned yet."""
    trials = expand(spec)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: a file, not a sweep folder")
    for t in trials:
        t.config.name, t.config.run_dir = t.name, str(out / TRIALS)
        folder = trial_dir(out, t.name)
        config = to_dict(t.config)
        if (folder / TRIAL_FILE).is_file():
            _same_config(folder, read_trial(folder)["config"], config)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / TRIAL_FILE, {"name": t.name, "group": t.group, "overrides": t.overrides, "seed": t.seed,
                                         "kimg": spec.kimg, "status": "pending", "error": None, "started": None,
                                         "finished": None, "resumed_from": None, "executor": spec.executor,
                                         "job_id": None, "overrides_applied": t.dotlist, "config": config})
    write_text(out / run_files.SPEC, spec_text)
    return trials


def _same_config(folder: Path, old: dict, new: dict) -> None:
    a, b = flatten(old), flatten(new)
    changed = changed_keys(old, new, RUN_KEYS)
    if changed:
        shown = ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in changed[:5])
        raise ConfigError(f"{folder / TRIAL_FILE}: trial {folder.name!r} was planned with another config ({shown}); "
                          f"run the changed spec into a new --out, or delete that trial's folder to redo it")


def _alive(record: dict) -> bool:
    """Whether a trial marked running is still running in a process of this machine."""
    pid = record.get("pid")
    if record.get("status") != "running" or record.get("host") != socket.gethostname() or not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"training.sweep.job" in cmdline or b"submitit" in cmdline


def run_sweep(spec: SweepSpec, spec_text: str, out: Path, wait: bool = True) -> list[dict]:
    """Plans, runs what is unfinished, writes status.json, results and report.html; returns the rows."""
    check_executor(spec)
    trials = plan(spec, spec_text, out)
    records = {t.name: read_trial(trial_dir(out, t.name)) for t in trials}
    busy = [n for n, r in records.items() if _alive(r)]
    if busy:
        raise RuntimeError(f"{out}: trial {busy[0]} is running (pid {records[busy[0]]['pid']}); wait for it or stop "
                           "it before rerunning the sweep")
    todo = [t.name for t in trials if records[t.name]["status"] != "done"]
    log.info("sweep %s: %d trials, %d finished (skipped), %d to run with executor %s", spec.name, len(trials),
             len(trials) - len(todo), len(todo), spec.executor)
    write_status(out, spec.name)
    if spec.executor == "local":
        run_local(out, todo, spec.workers, spec.name)
    else:
        run_submitit(out, todo, spec, wait)
    return tabulate(out, spec.name)


def tabulate(out: Path, name: str) -> list[dict]:
    from leakguard.sweep import report, results   # matplotlib loads only here
    write_status(out, name)
    try:
        rows = results.read_rows(out)
    except ValueError as e:   # a trial's file damaged after it ran: say which; the trials themselves stay as they are
        raise ValueError(f"{e}; the sweep's trials are kept: fix or delete that trial's folder, then "
                         f"`leakguard sweep report {out}` (or rerun the sweep) writes the table") from None
    results.write_results(rows, out)
    spec = out / run_files.SPEC
    report.write_report(out, rows, results.group_rows(rows), spec.read_text() if spec.is_file() else None)
    return rows


def write_status(out: Path, name: str) -> dict:
    trials = []
    for path in sorted((out / TRIALS).glob(f"*/{TRIAL_FILE}")):
        r = read_trial(path.parent)
        trials.append({k: r.get(k) for k in ("name", "status", "error", "started", "finished", "resumed_from",
                                               "executor", "job_id")})
    counts = {s: sum(t["status"] == s for t in trials) for s in ("pending", "running", "done", "failed")}
    status = {"sweep": name, "updated": now(), "counts": counts, "trials": trials}
    write_json(out / run_files.STATUS, status)
    return status


def _settle(folder: Path, returncode: int, what: str) -> None:
    """After a trial's process ended: a record still pending or running means it died before saying so."""
    record = read_trial(folder)
    if record["status"] in ("pending", "running"):
        update_trial(folder, status="failed", finished=now(),
                     error=f"{what} ended with status {returncode} before the trial finished (see {folder}/log.txt)")
    if record["status"] != "done":
        log.warning("trial %s: %s", folder.name, read_trial(folder)["error"])
    else:
        log.info("trial %s: done", folder.name)


def run_local(out: Path, names: list[str], workers: int, sweep: str) -> None:
    """Each trial in a process of its own (python -m training.sweep.job), `workers` at once."""
    env = dict(os.environ)
    if workers > 1 and "OMP_NUM_THREADS" not in env:   # trials at once share the cores instead of fighting
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    queue, running = list(names), {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                name = queue.pop(0)
                folder = trial_dir(out, name)
                update_trial(folder, executor="local", job_id=None)
                logf = open(folder / "log.txt", "a")
                cmd = [sys.executable, "-m", "training.sweep.job", str(out), name]
                running[name] = (subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env), logf)
                log.info("trial %s: started (log: %s)", name, folder / "log.txt")
            for name, (proc, logf) in list(running.items()):
                if proc.poll() is not None:
                    logf.close()
                    del running[name]
                    _settle(trial_dir(out, name), proc.returncode, "its process")
                    write_status(out, sweep)
            time.sleep(0.2)
    finally:
        for proc, logf in running.values():   # the sweep was stopped: its trials stop too and resume on a rerun
            proc.terminate()
            proc.wait()
            logf.close()


def check_executor(spec: SweepSpec) -> None:
    """Refuses, before anything is planned, an executor this machine cannot reach."""
    if spec.executor == "slurm" and shutil.which("srun") is None:
        raise FileNotFoundError("executor=slurm: no `srun` on PATH, so this is not a Slurm node; submit from the "
                                "cluster's login node, or use --executor local or submitit-local")


def make_executor(spec: SweepSpec, out: Path):
    """submitit's executor: its local one (subprocesses, same job objects) or Slurm."""
    try:
        import submitit
    except ImportError:
        raise ImportError(f"executor={spec.executor} needs submitit: pip install submitit (or pip install "
                          "-e '.[sweep]')") from None
    check_executor(spec)
    cluster = "local" if spec.executor == "submitit-local" else "slurm"
    s = spec.slurm
    executor = submitit.AutoExecutor(folder=out / "submitit", cluster=cluster)
    gpus = s.gpus_per_trial if cluster == "slurm" or _cuda_count() >= s.gpus_per_trial else 0
    params = {"name": f"sweep-{spec.name}", "timeout_min": s.time_min, "nodes": 1,
              "tasks_per_node": max(gpus, 1), "gpus_per_node": gpus, "cpus_per_task": s.cpus_per_gpu}
    if s.mem_gb is not None:
        params["mem_gb"] = s.mem_gb
    if cluster == "slurm":
        params["slurm_array_parallelism"] = s.array_parallelism
        params.update({f"slurm_{k}": v for k, v in (("partition", s.partition), ("account", s.account),
                                                     ("constraint", s.constraint)) if v is not None})
    executor.update_parameters(**params)
    return executor


def _cuda_count() -> int:
    import torch
    return torch.cuda.device_count()


def run_submitit(out: Path, names: list[str], spec: SweepSpec, wait: bool) -> None:
    """One submitit job per trial; with `wait`, until all have ended."""
    executor = make_executor(spec, out)
    jobs = {}
    for name in names:
        job = executor.submit(TrialJob(str(out), name))
        update_trial(trial_dir(out, name), executor=spec.executor, job_id=str(job.job_id))
        jobs[name] = job
        log.info("trial %s: submitted as %s job %s", name, spec.executor, job.job_id)
    write_status(out, spec.name)
    if not wait:
        log.info("submitted %d trials; `leakguard sweep status %s` shows progress, `leakguard sweep report %s` "
                 "tabulates", len(jobs), out, out)
        return
    for name, job in jobs.items():
        try:
            job.result()
            code = 0
        except Exception:  # noqa: BLE001 - the trial recorded its own error; a job that died before is settled here
            code = 1
        _settle(trial_dir(out, name), code, f"{spec.executor} job {job.job_id}")
        write_status(out, spec.name)
