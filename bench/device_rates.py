"""What this device can do at best, measured here: a large device-to-device copy (bytes per second, read and
write counted) and a large square matrix product per dtype (FLOP per second). The other bench scripts'
rates are read against these (bench/gpu_report.py): kernels against the copy, the exact search against the
matrix product, and the published StyleGAN2-ADA training times scaled from a V100 to this device.

  python bench/device_rates.py                        # GPU: 8192^3 products; CPU: 1024^3, float32 only
  python bench/device_rates.py --json rates.json      # also as JSON (bench/gpu_check.py reads it)
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.args import device as device_arg  # noqa: E402
from bench.ops import copy_bandwidth  # noqa: E402
from bench.timing import median_seconds  # noqa: E402
from leakguard.atomic import write_json  # noqa: E402

# Matrix sides: large enough that the GPU's product runs at its sustained rate, small enough for seconds.
SIDE = {"cuda": 8192, "cpu": 1024}
DTYPES = {"cuda": (torch.float32, torch.float16, torch.bfloat16), "cpu": (torch.float32,)}


def matmul_rate(n: int, dtype: torch.dtype, device: torch.device, repeats: int) -> float:
    """FLOP per second of an [n, n] @ [n, n] product in `dtype` (2 n^3 FLOP), under torch's current precision
    settings (float32 stays IEEE float32 unless TF32 has been allowed)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=g, device=device).to(dtype)
    b = torch.randn(n, n, generator=g, device=device).to(dtype)
    out = torch.empty(n, n, dtype=dtype, device=device)
    return 2 * n ** 3 / median_seconds(lambda: torch.mm(a, b, out=out), device, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", metavar="OUT", help="also write the rates to OUT as JSON")
    args = ap.parse_args()
    device = device_arg(ap, args.device)
    n = SIDE[device.type]
    copy = copy_bandwidth(device, args.repeats)
    rates = {str(dtype).removeprefix("torch."): matmul_rate(n, dtype, device, args.repeats)
             for dtype in DTYPES[device.type]}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    tf32 = device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
    print(f"{name}, torch {torch.__version__}: copy {copy / 1e9:.0f} GB/s (read + write, 256 MiB)")
    for dtype, rate in rates.items():
        print(f"  {n}^3 matmul {dtype:<9}{rate / 1e12:>9.1f} TFLOP/s" + (" (TF32 allowed)" if tf32 and
                                                                          dtype == "float32" else ""))
    if args.json:
        write_json(args.json, {"device": str(device), "name": name, "copy_bytes_per_s": copy, "matmul_side": n,
                               "float32_tf32": tf32, "matmul_flop_per_s": rates})


if __name__ == "__main__":
    main()
