"""A graceful stop of training on SIGINT (Ctrl-C) and SIGTERM (Slurm's preemption and time limit, a
scheduler's kill, submitit's requeue): the round under way finishes, a snapshot is written (atomically, as
always), and training.loop raises TrainingStopped, whose message names the snapshot and how to resume;
`leakguard train` then exits with STOPPED_EXIT. A second signal stops at once (the snapshots written so far
are intact). Under torchrun every rank agrees on the round to stop after, so the snapshot is consistent.

    with StopSignals() as signals:   # installs the handlers (main thread only), restores them after
        ...
        if signals.agreed(dist):     # after each round
            ...
"""
import os
import signal
import sys
import threading
from pathlib import Path

import torch

STOPPED_EXIT = 75  # EX_TEMPFAIL: stopped before the end, resumable; a scheduler may requeue the job
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """A command stopped by a signal after saving its work; the message says how to continue it."""


class TrainingStopped(Stopped):
    """Training stopped by a signal after a snapshot; `snapshot` is its path (None on ranks other than 0)."""

    def __init__(self, signal_name: str, nimg: int, snapshot: Path | None, run_dir: Path | None):
        self.signal_name, self.nimg, self.snapshot, self.run_dir = signal_name, nimg, snapshot, run_dir
        where = f"snapshot {snapshot}" if snapshot is not None else "the snapshot rank 0 wrote"
        resume = f"leakguard train --resume {run_dir}" if run_dir is not None else "--resume auto"
        super().__init__(f"stopped by {signal_name} at {nimg / 1000:g} kimg after the round under way; {where} "
                         f"holds everything so far; continue with `{resume}` (the same config and overrides)")


class StopSignals:
    """Records the first SIGINT or SIGTERM instead of dying; a second one restores the default handling and
    delivers itself (KeyboardInterrupt for SIGINT, termination for SIGTERM). With second_stops=False every
    signal is only counted (a sweep passes each one on to its trials)."""

    def __init__(self, second_stops: bool = True):
        self.received: str | None = None
        self.count = 0
        self.second_stops = second_stops
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1 and self.second_stops:
            self.__exit__()  # the second signal: as if no handler had been installed
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        if self.received is None:
            self.received = signal.Signals(signum).name
            then = "a second signal stops at once" if self.second_stops else "every signal is passed on"
            sys.stderr.write(f"leakguard: {self.received} received: stopping after the round under way, with a "
                             f"snapshot; {then}\n")

    def agreed(self, dist) -> str | None:
        """The signal to stop for, the same on every rank (any rank's signal stops them all); None to go on."""
        if dist.world == 1:
            return self.received
        flag = torch.tensor([1.0 if self.received is not None else 0.0], device=dist.device)
        dist.all_sum(flag)
        return (self.received or "a signal on another rank") if float(flag) > 0 else None


def ignore_in_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: workers leave SIGINT and SIGTERM to the main process, which finishes its
    round with them and shuts them down (Ctrl-C reaches the whole process group, Slurm signals every task)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
