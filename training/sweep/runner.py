"""Running a sweep: plan its trials in the sweep folder, run those not finished, tabulate.

    SWEEP/spec.yaml             the spec as given, with the command line's overrides
    SWEEP/status.json           every trial's state, rewritten as trials finish
    SWEEP/trials/<name>/        each trial's run folder and trial.json (training.sweep.job)
    SWEEP/results.csv|json, report.html    leakguard.sweep, over the trial folders
    SWEEP/submitit/             submitit's job files and logs (executor submitit-local or slurm)

A rerun skips finished trials, resumes interrupted ones from their latest snapshot and retries failed
ones; a trial planned before must still resolve to the same config (else it is refused, naming the
trial and the keys), so one folder never mixes two settings under one name. Everything is checked
before the folder is touched, and `sweep run` holds it (leakguard.folder_lock) while it plans and runs:
a second one into the same folder is refused, naming the first. A failing trial is recorded with its
error while the others go on; a trial stopped gracefully (or with the sweep) is interrupted and resumed
by a rerun.
"""
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from leakguard import run_files
from leakguard.atomic import write_json, write_text
from leakguard.folder_lock import FolderLock
from leakguard.sweep.trial import shown_status, trial_alive, unrecorded
from training.config import ConfigError, changed_keys, flatten, to_dict
from training.sweep.job import STOPPED, TRIAL_FILE, TRIALS, TrialJob, now, read_trial, trial_dir, update_trial
from training.sweep.spec import SweepSpec, Trial, expand
from training.stop import StopSignals, Stopped

log = logging.getLogger("leakguard.sweep")
COUNTED = ("pending", "running", "done", "failed", "interrupted")
RUN_KEYS = ("name", "run_dir", "resume")    # where a trial runs, not what it trains: not compared on a rerun


def check_plan(spec: SweepSpec, trials: list[Trial], out: Path) -> dict[str, dict]:
    """Every refusal of planning, before the folder is touched: --out a file, a trial planned before with
    another config, a value trial.json (strict JSON) cannot hold. Returns the records of the trials not
    planned yet."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: a file, not a sweep folder")
    new = {}
    for t in trials:
        folder = trial_dir(out, t.name)
        if t.pe is not None:
            if (folder / TRIAL_FILE).is_file():
                _same_settings(folder, "Private Evolution", read_trial(folder).get("pe"), t.pe, ("device", "batch"))
            else:
                new[t.name] = {"name": t.name, "group": t.group, "overrides": t.overrides, "seed": t.seed,
                               "kimg": None, "status": "pending", "error": None, "started": None, "finished": None,
                               "resumed_from": None, "executor": spec.executor, "job_id": None, "pe": t.pe,
                               "config": None}
            continue
        t.config.name, t.config.run_dir = t.name, str(out / TRIALS)
        config = to_dict(t.config)
        if (folder / TRIAL_FILE).is_file():
            _same_config(folder, read_trial(folder)["config"], config)
            _same_settings(folder, "release", read_trial(folder).get("release"), t.release)
            continue
        bad = [(k, v) for k, v in {**flatten(config), **t.overrides}.items()
               if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ConfigError(f"sweep {spec.name!r}, trial {t.name}: {bad[0][0]}={bad[0][1]}: not a finite number "
                              "(a trial's record is strict JSON)")
        new[t.name] = {"name": t.name, "group": t.group, "overrides": t.overrides, "seed": t.seed, "kimg": spec.kimg,
                       "status": "pending", "error": None, "started": None, "finished": None, "resumed_from": None,
                       "executor": spec.executor, "job_id": None, "overrides_applied": t.dotlist, "config": config}
        if t.release is not None:
            new[t.name]["release"] = t.release
    return new


def write_plan(out: Path, new: dict[str, dict], spec_text: str) -> None:
    """The sweep folder: a trial folder with its trial.json (status pending) for each new trial, and the spec."""
    for name, record in new.items():
        trial_dir(out, name).mkdir(parents=True, exist_ok=True)
        write_json(trial_dir(out, name) / TRIAL_FILE, record)
    write_text(out / run_files.SPEC, spec_text)


def _same_config(folder: Path, old: dict, new: dict) -> None:
    a, b = flatten(old), flatten(new)
    changed = changed_keys(old, new, RUN_KEYS)
    if changed:
        shown = ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in changed[:5])
        raise ConfigError(f"{folder / TRIAL_FILE}: trial {folder.name!r} was planned with another config ({shown}); "
                          f"run the changed spec into a new --out, or delete that trial's folder to redo it")


def _same_settings(folder: Path, kind: str, old: dict | None, new: dict | None, free: tuple = ()) -> None:
    """Refuses a rerun whose settings of an untrained trial (kind: its kind in words) differ from those it was
    planned with; keys in `free` (where it runs, not what it makes) may change."""
    old, new = old or {}, new or {}
    changed = sorted(k for k in set(old) | set(new) if k not in free and old.get(k) != new.get(k))
    if changed:
        shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
        raise ConfigError(f"{folder / TRIAL_FILE}: {kind} trial {folder.name!r} was planned with other settings "
                          f"({shown}); run the changed spec into a new --out, or delete that trial's folder")


def check_idle(out: Path, trials: list[Trial]) -> list[Path]:
    """Refuses a rerun while a trial planned before still runs in a process of this machine (a sweep that was
    killed without its trials); returns the folders of trials marked running whose process is gone."""
    gone = []
    for t in trials:
        folder = trial_dir(out, t.name)
        record = read_trial(folder) if (folder / TRIAL_FILE).is_file() else {}
        running = trial_alive(record)
        if running:
            raise FileExistsError(f"{out}: trial {t.name} is running (pid {record['pid']} on {record['host']}); wait "
                                  "for it or stop it before rerunning the sweep")
        if running is False and record.get("status") == "running":
            gone.append(folder)
    return gone


def run_sweep(spec: SweepSpec, spec_text: str, out: Path, wait: bool = True) -> list[dict]:
    """Plans, runs what is unfinished, writes status.json, results and report.html; returns the rows. Every
    check comes first; the sweep folder is held (FolderLock) from planning to the report."""
    check_executor(spec)
    trials = expand(spec)
    check_plan(spec, trials, out)
    with FolderLock(out, "sweep folder"):             # a second `sweep run` is refused here, naming this one
        new = check_plan(spec, trials, out)           # again, holding the folder
        for folder in check_idle(out, trials):
            record = update_trial(folder, status="interrupted", error="its process ended before the trial finished")
            log.warning("trial %s: its process (pid %s on %s) is gone; resuming it", folder.name, record.get("pid"),
                        record.get("host"))
        write_plan(out, new, spec_text)
        records = {t.name: read_trial(trial_dir(out, t.name)) for t in trials}
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
    for folder in unrecorded(out):
        log.warning("%s: no %s (not a trial this sweep planned, or its record is gone): left out of the table",
                    folder, TRIAL_FILE)
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
        trials.append({**{k: r.get(k) for k in ("name", "error", "started", "finished", "resumed_from", "executor",
                                                "job_id")}, "status": shown_status(r)})
    counts = {s: sum(t["status"] == s for t in trials) for s in COUNTED}
    status = {"sweep": name, "updated": now(), "counts": counts, "trials": trials}
    write_json(out / run_files.STATUS, status)
    return status


def settle(folder: Path, returncode: int, what: str, stopped: bool = False) -> None:
    """After a trial's process ended: a record still pending or running means it died before saying so;
    one stopped gracefully (exit status STOPPED) or by the sweep (`stopped`) was interrupted: resumable."""
    record = read_trial(folder)
    if record["status"] in ("pending", "running") and (stopped or returncode == STOPPED):
        update_trial(folder, status="interrupted", finished=now(),
                     error=f"{what} was stopped (status {returncode}) before the trial finished; a rerun of the "
                           "sweep resumes it from its snapshot")
    elif record["status"] in ("pending", "running"):
        update_trial(folder, status="failed", finished=now(),
                     error=f"{what} ended with status {returncode} before the trial finished (see {folder}/log.txt)")
    if record["status"] != "done":
        log.warning("trial %s: %s", folder.name, read_trial(folder)["error"])
    else:
        log.info("trial %s: done", folder.name)


def run_local(out: Path, names: list[str], workers: int, sweep: str) -> None:
    """Each trial in a process of its own (python -m training.sweep.job), `workers` at once. Trials run in
    sessions of their own, so a signal reaches them through the sweep only: on SIGINT or SIGTERM the sweep
    starts no more trials and passes SIGTERM to each running one, which stops after its round with a
    snapshot; once they have, the sweep stops (Stopped: the rerun resumes them). A second signal is passed
    on too, and stops the trials at once."""
    env = dict(os.environ)
    if workers > 1 and "OMP_NUM_THREADS" not in env:   # trials at once share the cores instead of fighting
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    queue, running, passed_on = list(names), {}, 0
    with StopSignals(second_stops=False) as signals:
        try:
            while queue or running:
                while queue and len(running) < workers and signals.count == 0:
                    name = queue.pop(0)
                    folder = trial_dir(out, name)
                    update_trial(folder, executor="local", job_id=None)
                    logf = open(folder / "log.txt", "a")
                    cmd = [sys.executable, "-m", "training.sweep.job", str(out), name]
                    running[name] = (subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                                      start_new_session=True), logf)
                    log.info("trial %s: started (log: %s)", name, folder / "log.txt")
                for _ in range(signals.count - passed_on):   # each signal the sweep got, once to each trial
                    for proc, _ in running.values():
                        if proc.poll() is None:
                            proc.send_signal(signal.SIGTERM)
                passed_on = signals.count
                for name, (proc, logf) in list(running.items()):
                    if proc.poll() is not None:
                        logf.close()
                        del running[name]
                        settle(trial_dir(out, name), proc.returncode, "its process", stopped=signals.count > 0)
                        write_status(out, sweep)
                if signals.count and not running:
                    raise Stopped(f"stopped by {signals.received}: the running trials stopped after their round with "
                                  f"a snapshot, {len(queue)} did not start; rerun the same `leakguard sweep run` to "
                                  f"resume them")
                time.sleep(0.2)
        finally:
            for name, (proc, logf) in running.items():   # an error in the sweep itself: its trials stop, resumable
                if proc.poll() is None:
                    proc.terminate()
                proc.wait()
                logf.close()
                settle(trial_dir(out, name), proc.returncode, "its process", stopped=True)
            if running:
                write_status(out, sweep)


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
        settle(trial_dir(out, name), code, f"{spec.executor} job {job.job_id}")
        write_status(out, spec.name)
