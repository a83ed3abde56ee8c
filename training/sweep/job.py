"""One trial of a sweep: an ordinary training run in SWEEP/trials/<name>/, started from its latest
intact snapshot when it has one, its state kept in the folder's trial.json.

    TrialJob(sweep_dir, name)()                  # what a local process and a submitit job both run
    python -m training.sweep.job SWEEP NAME      # the local executor's process

trial.json holds the trial's resolved config (written when the sweep is planned) and its state:
pending -> running -> done | failed | interrupted, with the error, when it started and finished, the
snapshot it resumed from, and where it ran (host, pid and the process's start time). A trial whose
training is stopped gracefully (SIGTERM or SIGINT: training.stop.TrainingStopped, after a snapshot) is
interrupted, not failed, and its process exits with STOPPED; a rerun resumes it. Under submitit with several
tasks (slurm.gpus_per_trial > 1) every task is one torchrun-style process of the same run; rank 0 writes
the folder.
"""
import logging
import os
import socket
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from leakguard import run_files
from leakguard.atomic import write_json, write_text
from leakguard.folder_lock import process_start
from leakguard.sweep.trial import read_trial
from training import distributed, rundir
from training.config import from_dict
from training.stop import STOPPED_EXIT, TrainingStopped
from training.sweep.pe_arms import settings_of

TRIAL_FILE, TRIALS = run_files.TRIAL, run_files.TRIALS
TRIAL_FILES = (TRIAL_FILE, "log.txt", "error.txt")   # what the runner and the job keep in a trial's folder
STOPPED = STOPPED_EXIT       # exit status of a trial's process whose training was stopped (as `leakguard train`'s)
log = logging.getLogger("leakguard.sweep")


def trial_dir(sweep_dir: str | Path, name: str) -> Path:
    return Path(sweep_dir) / TRIALS / name


def update_trial(folder: Path, **changes) -> dict:
    record = {**read_trial(folder), **changes}
    write_json(folder / TRIAL_FILE, record)
    return record


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _join_submitit_tasks() -> None:
    """Under a submitit job of several tasks: the env:// variables torch.distributed reads (RANK, ...)."""
    if "SUBMITIT_EXECUTOR" not in os.environ and "SLURM_JOB_ID" not in os.environ:
        return
    try:
        import submitit
        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):
        return
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


@dataclass
class TrialJob:
    sweep_dir: str
    name: str

    def __call__(self) -> str:
        folder = trial_dir(self.sweep_dir, self.name)
        record = read_trial(folder)
        if record.get("pe") is not None:
            return self._pe(folder, record)
        if record.get("release") is not None:
            return self._release(folder, record)
        cfg = from_dict(record["config"], str(folder / TRIAL_FILE))
        _join_submitit_tasks()
        dist = distributed.init(cfg.train.device)
        try:
            resume = rundir.latest_intact_snapshot(folder)
            if dist.is_main:
                update_trial(folder, status="running", started=now(), finished=None, error=None,
                             resumed_from=str(resume.relative_to(folder)) if resume else None,
                             host=socket.gethostname(), pid=os.getpid(), started_ticks=process_start(os.getpid()))
            self._train(cfg, dist, folder, resume)
            if dist.is_main:
                update_trial(folder, status="done", finished=now())
        finally:
            distributed.shutdown()
        return str(folder)

    def _pe(self, folder: Path, record: dict) -> str:
        """A Private Evolution arm: `leakguard pe` into the trial folder, continued from its last iteration."""
        from training.pe import run_pe                     # as the training loop: loaded in the trial's process
        return self._untrained(folder, lambda: run_pe(settings_of(record["pe"]), folder, foreign=TRIAL_FILES))

    def _release(self, folder: Path, record: dict) -> str:
        """A release arm: draw (and filter) the release into the trial folder and score it (training.sweep.release)."""
        from training.sweep.release import run_release     # as the training loop: loaded in the trial's process
        return self._untrained(folder, lambda: run_release(record, folder, Path(self.sweep_dir)))

    @staticmethod
    def _untrained(folder: Path, work) -> str:
        """Runs a trial that trains nothing (`work()`), its state kept in trial.json as a training trial's."""
        update_trial(folder, status="running", started=now(), finished=None, error=None, host=socket.gethostname(),
                     pid=os.getpid(), started_ticks=process_start(os.getpid()))
        try:
            work()
        except (Exception, KeyboardInterrupt) as e:
            write_text(folder / "error.txt", traceback.format_exc())
            interrupted = isinstance(e, KeyboardInterrupt)
            update_trial(folder, status="interrupted" if interrupted else "failed", finished=now(),
                         error=f"{type(e).__name__}: {e}"[:2000])
            raise
        update_trial(folder, status="done", finished=now())
        return str(folder)

    @staticmethod
    def _train(cfg, dist, folder: Path, resume: Path | None) -> None:
        from training import loop  # the data stack and TensorBoard load only in the trial's process
        try:
            loop.train(cfg, dist, folder if dist.is_main else None, resume)
        except TrainingStopped as e:
            if dist.is_main:
                update_trial(folder, status="interrupted", finished=now(),
                             error=f"stopped: {e}; a rerun of the sweep resumes it from its snapshot"[:2000])
            raise
        except Exception as e:
            if dist.is_main:
                write_text(folder / "error.txt", traceback.format_exc())
                update_trial(folder, status="failed", finished=now(), error=f"{type(e).__name__}: {e}"[:2000])
            raise

    def checkpoint(self, *args, **kwargs):
        """submitit calls this on a timeout or preemption: requeue the same trial; it resumes from its snapshot."""
        import submitit
        return submitit.helpers.DelayedSubmission(TrialJob(self.sweep_dir, self.name))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    sweep_dir, name = (argv if argv is not None else sys.argv[1:])
    try:
        TrialJob(sweep_dir, name)()
    except TrainingStopped as e:  # recorded as interrupted by the job: resumable
        print(f"trial {name} stopped: {e}", file=sys.stderr)
        return STOPPED
    except Exception as e:  # recorded in trial.json and error.txt by the job; the exit status tells the runner
        print(f"trial {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
