"""Builds the fused kernels (or loads them from the cache), timed per device, then prints `leakguard doctor`'s
report: the first section of bench/gpu_check.py, since every later CUDA section needs the kernels and a
build that fails should be reported once, with its log, not as a hundred failing tests.

Both devices are built: under LEAKGUARD_OPS=strict the CUDA tests' CPU-side comparisons need the CPU
kernels too. Exits 1 when a kernel module cannot be loaded.

  python bench/gpu_build.py                     # cpu and cuda (the one that cannot build says why)
  python bench/gpu_build.py --json build.json
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cuda_ops import _build, _kernels, doctor  # noqa: E402
from leakguard.atomic import write_json  # noqa: E402


def build(device: str) -> dict:
    """Seconds to load (and build on first use) the `device` kernels, and the error when they do not load."""
    t0 = time.perf_counter()
    try:
        _kernels.get(device)
        error = None
    except _build.BuildError as e:
        error = str(e)
    return {"seconds": time.perf_counter() - t0, "error": error}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    ap.add_argument("--json", metavar="OUT", help="also write the build times and errors to OUT as JSON")
    args = ap.parse_args()
    kernels = {device: build(device) for device in args.devices}
    report = doctor.report()  # the kernels are loaded now: this reads them, nothing builds twice
    print("\n".join(report))
    if args.json:
        write_json(args.json, {"kernels": kernels, "doctor": report})
    failed = {d: k["error"] for d, k in kernels.items() if k["error"]}
    if failed:
        sys.exit("; ".join(f"the {d} kernels did not load: {why}" for d, why in failed.items()))


if __name__ == "__main__":
    main()
