"""The fused kernels per device: which extension holds them, which dtypes they take, and whether they
load here. A module built ahead of time by setup.py wins; otherwise the extension builds on first use.
One attempt per device and process: a failed build is remembered, not retried on every call."""
import importlib
import threading
from pathlib import Path
from types import ModuleType

import torch

from cuda_ops import _build

CSRC = Path(__file__).resolve().parent / "csrc"

SPECS = {
    "cpu": _build.ExtensionSpec(
        name="leakguard_ops_cpu",
        sources=(CSRC / "bind_cpu.cpp", CSRC / "bias_act_cpu.cpp", CSRC / "upfirdn2d_cpu.cpp"),
        cflags=("-O3", "-fopenmp"),
        ldflags=("-fopenmp",),
    ),
    "cuda": _build.ExtensionSpec(
        name="leakguard_ops_cuda",
        sources=(CSRC / "bind_cuda.cpp", CSRC / "bias_act_cuda.cu", CSRC / "upfirdn2d_cuda.cu"),
        cuda=True,
        cflags=("-O3",),
        # No --use_fast_math: it swaps tanh/exp for approximations, and the ops are memory-bound anyway.
        cuda_cflags=("-O3", "--expt-relaxed-constexpr"),
    ),
}
AHEAD_OF_TIME = {"cuda": "cuda_ops._ops_cuda"}  # built by setup.py when it finds a CUDA toolkit
DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.float32, torch.float64),
}

_lock = threading.Lock()
_loaded: dict[str, ModuleType | _build.BuildError] = {}


def get(device: str) -> ModuleType:
    """The kernel module for 'cpu' or 'cuda'; raises BuildError (remembered) when it cannot load."""
    with _lock:
        if device not in _loaded:
            _loaded[device] = _load(device)
        found = _loaded[device]
    if isinstance(found, _build.BuildError):
        raise found
    return found


def _load(device: str) -> ModuleType | _build.BuildError:
    if device in AHEAD_OF_TIME:
        try:
            return importlib.import_module(AHEAD_OF_TIME[device])
        except ImportError:
            pass
    if device == "cuda" and not torch.cuda.is_available():
        return _build.BuildError("no CUDA device is visible to torch")
    try:
        return _build.load_extension(SPECS[device])
    except _build.BuildError as e:
        return e


def unavailable_reason(device: str, dtype: torch.dtype) -> str | None:
    """Why the fused kernels cannot run a `dtype` tensor on `device`, or None when they can."""
    if dtype not in DTYPES[device]:
        names = ", ".join(str(d).removeprefix("torch.") for d in DTYPES[device])
        return f"dtype {str(dtype).removeprefix('torch.')} is not supported by the {device} kernels ({names})"
    try:
        get(device)
    except _build.BuildError as e:
        return str(e)
    return None


def forget() -> None:
    """Drops the remembered load results (tests that swap the extension spec use it)."""
    with _lock:
        _loaded.clear()
