"""One process at a time in a folder: a run folder that training writes, a sweep folder, an audit's --out.

    with FolderLock(run_dir, "training run"):   # FolderLocked (one line naming the holder) if another has it
        ...

The lock is FOLDER/.leakguard.lock, created atomically (a hard link of a finished file, so it is never
seen half-written) and holding the holder's pid, host, process start time and command. A lock whose
process is gone (on this host: no such pid, or a pid reused by a later process) is stale: it is taken over,
and the log says so. A lock held on another host cannot be checked from here: it is refused, naming the
host and the file to delete once that process is known to be gone.
"""
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger("leakguard.lock")

LOCK_FILE = ".leakguard.lock"


class FolderLocked(FileExistsError):
    """Another live process holds the folder; the message names it (pid, host) and the lock file."""


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name


def alive(holder: dict) -> bool:
    """Whether the process a lock names still runs (assumed so when it is on another host)."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    started = holder.get("started_ticks")
    return started is None or process_start(pid) in (None, started)


def describe(holder: dict) -> str:
    return (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
            f"({holder.get('command', '?')[:120]})")


class FolderLock:
    def __init__(self, folder: str | os.PathLike, what: str = "folder"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_FILE
        self.held = False
        self.created = False  # the folder was made for the lock: removed again on release when still empty

    def read_holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable or half-gone: treated as a lock of a process that is gone

    def acquire(self) -> "FolderLock":
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_ticks": process_start(os.getpid()),
              "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
        tmp = self.folder / f"{LOCK_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(me))
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    self.held = True
                    return self
                except FileExistsError:
                    holder = self.read_holder()
                    if holder is None:
                        continue  # released meanwhile: try again
                    if holder and alive(holder):
                        raise FolderLocked(
                            f"{self.folder}: this {self.what} is in use by {describe(holder)}; wait for it to end, "
                            f"or if that process is gone, delete {self.path}") from None
                    self._take_over(holder)
            raise FolderLocked(f"{self.folder}: could not lock this {self.what} ({self.path} keeps changing: "
                               "another process is starting in it)")
        finally:
            tmp.unlink(missing_ok=True)
            if not self.held:
                self._remove_if_created()

    def _take_over(self, holder: dict) -> None:
        stale = self.folder / f"{LOCK_FILE}.stale.{os.getpid()}"
        try:
            os.rename(self.path, stale)  # atomic: of two processes taking over, one renames, one finds nothing
        except FileNotFoundError:
            return
        stale.unlink(missing_ok=True)
        log.warning("%s: took over the lock of a process that is gone (%s)", self.folder,
                    describe(holder) if holder else "an unreadable lock file")

    def release(self) -> None:
        if self.held:
            holder = self.read_holder()
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False
            self._remove_if_created()

    def _remove_if_created(self) -> None:
        if self.created and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
