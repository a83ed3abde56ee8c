"""Builds a C++/CUDA extension just in time, once per source hash, shared by concurrent processes.

Never called at import: the ops build on first use. The finished build lives in
`<cache>/<name>-<hash>/`, where the hash covers the sources, the flags, the compiler, torch, CUDA and
Python versions, so editing a kernel or upgrading torch rebuilds, and nothing else does.

Concurrent processes (torchrun starts several at once) take an exclusive `flock` on `<name>-<hash>.lock`;
one builds, the others wait and then load its result. The kernel drops a dead process's flock, so a
lock file left by a killed build never blocks the next one (the fix for "stale lock" hangs), and each
build happens in a private temporary folder renamed into place only when complete, so no process ever
loads half a build. A failed build leaves its compiler output in `<name>-<hash>.log` and raises
BuildError naming that file.
"""
import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

_BUILT_MARK = "BUILT"  # written last into a finished build folder: "<module name> <library file name>"


class BuildError(RuntimeError):
    """The extension cannot be built or loaded here; the message says why and where the log is."""


@dataclass(frozen=True)
class ExtensionSpec:
    name: str                                   # Python module name of the built library
    sources: tuple[Path, ...]                   # .cpp / .cu files; headers beside them count in the hash
    include_dirs: tuple[Path, ...] = ()         # more header folders (their headers count in the hash too)
    cuda: bool = False                          # needs nvcc and a CUDA build of torch
    cflags: tuple[str, ...] = ()
    cuda_cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    extra_hash: tuple[str, ...] = field(default=())  # anything else the binary depends on


def cache_root() -> Path:
    """LEAKGUARD_OPS_CACHE, else $XDG_CACHE_HOME/leakguard/ops, else ~/.cache/leakguard/ops."""
    if os.environ.get("LEAKGUARD_OPS_CACHE"):
        return Path(os.environ["LEAKGUARD_OPS_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "leakguard" / "ops"


def build_timeout() -> float:
    """Seconds to wait for another process's build (LEAKGUARD_OPS_BUILD_TIMEOUT, default 15 minutes)."""
    raw = os.environ.get("LEAKGUARD_OPS_BUILD_TIMEOUT", "900")
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"LEAKGUARD_OPS_BUILD_TIMEOUT must be a number of seconds, got {raw!r}") from None


def _version_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def compiler() -> str:
    return os.environ.get("CXX", "c++")


def compiler_version() -> str | None:
    return _version_line([compiler(), "--version"])


def ninja_path() -> str | None:
    """ninja on PATH, else the one the `ninja` wheel installs beside this Python."""
    found = shutil.which("ninja")
    if found:
        return found
    beside = Path(sys.executable).parent / "ninja"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def nvcc_path() -> str | None:
    from torch.utils.cpp_extension import CUDA_HOME
    if CUDA_HOME and (Path(CUDA_HOME) / "bin" / "nvcc").is_file():
        return str(Path(CUDA_HOME) / "bin" / "nvcc")
    return shutil.which("nvcc")


def nvcc_version() -> str | None:
    nvcc = nvcc_path()
    if not nvcc:
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((line.strip() for line in out.splitlines() if "release" in line), None)


def toolchain_problem(spec: ExtensionSpec) -> str | None:
    """Why `spec` cannot be built on this machine at all, or None."""
    if spec.cuda:
        if torch.version.cuda is None:
            return f"this torch ({torch.__version__}) was built without CUDA"
        if nvcc_path() is None:
            return "no CUDA toolkit found (nvcc): install one matching torch's CUDA and set CUDA_HOME"
    if shutil.which(compiler()) is None:
        return f"no C++ compiler found (looked for {compiler()!r} on PATH; set CXX to choose one)"
    if ninja_path() is None:
        return "ninja is not installed (pip install ninja)"
    return None


def build_key(spec: ExtensionSpec) -> str:
    h = hashlib.sha256()
    folders = sorted({Path(s).parent for s in spec.sources} | {Path(d) for d in spec.include_dirs})
    headers = sorted(p for d in folders for p in d.glob("*.h"))
    for path in [*map(Path, spec.sources), *headers]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    parts = [spec.name, *spec.cflags, *spec.cuda_cflags, *spec.ldflags, *spec.extra_hash,
             str(compiler_version()), torch.__version__, str(torch.version.cuda),
             sys.version.split()[0], platform.machine()]
    if spec.cuda:
        parts.append(str(nvcc_version()))
    h.update("\0".join(parts).encode())
    return h.hexdigest()[:16]


class BuildLock:
    """An exclusive flock on `path`, waited for up to `timeout` seconds. The file records the holder
    for error messages; a holder that dies releases the lock with it."""

    def __init__(self, path: Path, timeout: float):
        self.path, self.timeout, self.fd = path, timeout, None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = Path(self.path).read_text(errors="replace").strip() or "an unknown process"
                    os.close(fd)
                    raise BuildError(f"waited {self.timeout:.0f} s for the build lock {self.path}, held by "
                                     f"{holder}; raise LEAKGUARD_OPS_BUILD_TIMEOUT if that build is still "
                                     f"running") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _import_library(module_name: str, path: Path) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[module_name] = module
    return module


def _load_finished(folder: Path) -> ModuleType | None:
    mark = folder / _BUILT_MARK
    if not mark.is_file():
        return None
    module_name, library = mark.read_text().split()
    return _import_library(module_name, folder / library)


def _first_error_line(log: str) -> str:
    for line in log.splitlines():
        if "error" in line.lower() and len(line) < 400:
            return line.strip()
    return log.strip().splitlines()[-1][:300] if log.strip() else "no output"


def _compile(spec: ExtensionSpec, folder: Path, log_path: Path) -> ModuleType:
    from torch.utils import cpp_extension
    env_path = os.environ.get("PATH", "")
    ninja = ninja_path()
    if ninja and shutil.which("ninja") is None:  # cpp_extension runs `ninja` from PATH
        os.environ["PATH"] = str(Path(ninja).parent) + os.pathsep + env_path
    try:
        module = cpp_extension.load(name=spec.name, sources=[str(s) for s in spec.sources],
                                    extra_cflags=list(spec.cflags), extra_cuda_cflags=list(spec.cuda_cflags),
                                    extra_ldflags=list(spec.ldflags), build_directory=str(folder),
                                    extra_include_paths=[str(d) for d in spec.include_dirs],
                                    with_cuda=spec.cuda, verbose=False)
    except Exception as e:  # noqa: BLE001 - any build failure becomes a logged fallback reason
        log_path.write_text(f"building {spec.name} in {folder}\n\n{e}\n")
        raise BuildError(f"the build of {spec.name} failed ({_first_error_line(str(e))}); "
                         f"full log: {log_path}") from None
    finally:
        os.environ["PATH"] = env_path
    return module


def load_extension(spec: ExtensionSpec) -> ModuleType:
    """The built module for `spec`: loaded from the cache, or built there first (once across processes)."""
    problem = toolchain_problem(spec)
    if problem:
        raise BuildError(problem)
    missing = [str(s) for s in spec.sources if not Path(s).is_file()]
    if missing:
        raise BuildError(f"the sources of {spec.name} are missing: {', '.join(missing)} (reinstall leakguard)")
    root = cache_root()
    if root.exists() and not root.is_dir():
        raise BuildError(f"the kernel cache {root} is a file, not a folder (LEAKGUARD_OPS_CACHE); point it at a "
                         f"folder")
    key = build_key(spec)
    final = root / f"{spec.name}-{key}"
    module = _load_finished(final)
    if module is not None:
        return module
    with BuildLock(root / f"{spec.name}-{key}.lock", build_timeout()):
        module = _load_finished(final)  # another process finished while this one waited
        if module is not None:
            return module
        for leftover in root.glob(f".{spec.name}-{key}.tmp-*"):  # from builds killed midway
            shutil.rmtree(leftover, ignore_errors=True)
        if final.exists():  # a folder without its mark: incomplete, never loaded
            shutil.rmtree(final, ignore_errors=True)
        tmp = root / f".{spec.name}-{key}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True)
        try:
            module = _compile(spec, tmp, root / f"{spec.name}-{key}.log")
            library = Path(module.__file__)
            (tmp / _BUILT_MARK).write_text(f"{module.__name__} {library.name}\n")
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return module
