"""Atomic file writes, the one helper every package uses: a file is written to a temporary name beside
its target, fsynced, given the permissions a normally created file gets, and renamed over the target,
so a reader (or a resumed run after a crash) sees the old file or the whole new one, never half.

    with atomic_open(path, "wb") as f:      # any writer that takes a file object
        torch.save(obj, f)
    with AtomicFile(path) as out:           # writers that need a path (zipfile, numpy memmaps)
        write_somehow(out.tmp)
    write_json(path, obj)                   # strict JSON: NaN and infinity are refused
"""
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


class AtomicFile:
    """A temporary file beside `path` that replaces `path` on commit() and disappears on discard();
    as a context manager it commits when the block succeeds and discards when it raises."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A dot name ending in .tmp: globs for the real files (snapshot-*.pt, *.zip) never match it.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as e:  # named by the file the user asked for, not by an internal temporary name
            raise type(e)(e.errno, f"cannot write {self.path} ({e.strerror})") from None
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        try:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        _fsync_dir(self.path.parent)
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; some file systems do not support it, and nothing is lost then.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = None) -> Iterator[IO]:
    """open(path, mode) for writing, atomically: the file appears at `path` only if the block succeeds."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open: mode {mode!r} does not write a new file; use 'w', 'wb' or 'x'")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with AtomicFile(path) as out:
        try:
            with open(out.tmp, mode.replace("x", "w"), encoding=encoding) as f:
                yield f
        except OSError as e:
            if e.filename is not None or e.errno is None:
                raise
            # e.g. a full disk inside a writer (torch.save): name the file the user asked for
            raise OSError(e.errno, e.strerror, str(out.path)) from None


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path).expanduser()


def finite_or_null(value):
    """A copy of nested dicts, lists and numbers with every NaN or infinite float as None (JSON null),
    for files whose readers want strict JSON and whose writers may hold such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def strict_json(obj, indent: int | None = 1) -> str:
    """json.dumps that refuses NaN and infinity (which strict JSON readers reject), naming the first one."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"cannot write strict JSON: {e}; a value is NaN or infinite at "
                         f"{_first_non_finite(obj) or '?'}") from None


def _first_non_finite(obj, where: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the top level"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = _first_non_finite(v, f"{where}.{k}" if isinstance(k, str) else f"{where}[{k}]")
        if found:
            return found
    return None


def write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> Path:
    """Writes obj as strict JSON (with a final newline), atomically; nothing is written if it is not."""
    try:
        text = strict_json(obj, indent)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return write_text(path, text + "\n")
