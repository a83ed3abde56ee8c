"""Speed of the fused ops against the pure-torch reference, measured in the same run.

For each StyleGAN2 shape: bias_act (lrelu, gain sqrt(2), clamp 256, per-channel bias) and upfirdn2d
(upsample x2 and downsample x2 with the [1,3,3,1] filter), forward and forward+backward, for every
implementation that runs on the device, timed in alternating rounds. "vs ref" is reference time /
fused time (higher is faster). Forward+backward returns the gradients of x (and b)
with torch.autograd.grad, as a layer's backward hands them on.
On a GPU the table adds the bandwidth each row achieves (bytes the op must read and write / time)
against the device's copy bandwidth, measured here with a large tensor copy.

  python bench/ops.py                 # CPU: reference vs the C++ kernels (builds them on first use)
  python bench/ops.py --device cuda   # GPU: reference vs the CUDA kernels, float32 and float16
  python bench/ops.py --device cuda --json ops.json   # the rows also as JSON (bench/gpu_check.py reads it)
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import median_seconds, paired_median_seconds  # noqa: E402
from cuda_ops import _impl  # noqa: E402
from cuda_ops.bias_act import bias_act  # noqa: E402
from cuda_ops.upfirdn2d import downsample2d, setup_filter, upsample2d  # noqa: E402
from leakguard.atomic import write_json  # noqa: E402

SHAPES = {  # [N, C, H, W] at StyleGAN2's resolutions
    "cpu": [(32, 512, 8, 8), (32, 512, 16, 16), (32, 512, 32, 32), (8, 128, 64, 64)],
    "cuda": [(32, 512, 8, 8), (32, 512, 16, 16), (32, 512, 32, 32), (32, 512, 64, 64),
             (32, 128, 256, 256), (32, 64, 256, 256)],
}


def copy_bandwidth(device: torch.device, repeats: int) -> float:
    """Bytes per second of a plain device-to-device copy of 256 MiB (read + write counted)."""
    src = torch.empty(64 * 2**20, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    t = median_seconds(lambda: dst.copy_(src), device, repeats)
    return 2 * src.numel() * src.element_size() / t


def cases(shape, dtype, device):
    """(name, forward fn, bytes the forward must move, bytes forward+backward must move) per op."""
    x = torch.randn(shape, dtype=dtype, device=device)
    b = torch.randn(shape[1], dtype=dtype, device=device)
    f = setup_filter([1, 3, 3, 1], device=device)
    n = x.numel() * x.element_size()
    # bias_act: read x, write y; backward reads dy and x, writes dx.
    yield "bias_act lrelu", lambda impl, x, b: bias_act(x, b, act="lrelu", gain=np.sqrt(2), clamp=256, impl=impl), \
        2 * n, 5 * n, (x, b)
    # upsample x2: read x, write 4x; backward reads 4x, writes x. downsample: the other way round.
    yield "upsample x2", lambda impl, x, b: upsample2d(x, f, impl=impl), 5 * n, 10 * n, (x, None)
    yield "downsample x2", lambda impl, x, b: downsample2d(x, f, impl=impl), 1.25 * n, 2.5 * n, (x, None)


def fwd_bwd(fn, impl, x, b):
    xg = x.detach().requires_grad_(True)
    bg = b.detach().requires_grad_(True) if b is not None else None
    dy = torch.ones_like(fn(impl, xg, bg))  # the upstream gradient, made once outside the timed calls

    inputs = [t for t in (xg, bg) if t is not None]

    def run():  # the gradients of the op's inputs, as the layer below receives them (no .grad accumulation)
        torch.autograd.grad(fn(impl, xg, bg), inputs, dy)
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", metavar="OUT", help="also write the table to OUT as JSON (times in seconds)")
    args = ap.parse_args()
    device = torch.device(args.device)
    fused = args.device
    if _impl.resolve("bias_act", "auto", torch.zeros(1, device=device)) != fused:
        sys.exit(f"the fused {fused} kernels are not available here; run `leakguard doctor` for the reason")
    dtypes = [torch.float32] if fused == "cpu" else [torch.float32, torch.float16]
    bw = copy_bandwidth(device, args.repeats) if fused == "cuda" else None
    print(f"device: {torch.cuda.get_device_name(device) if fused == 'cuda' else 'CPU'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", copy bandwidth {bw / 1e9:.0f} GB/s" if bw else ""))
    head = "| op | shape | dtype | pass | ref ms | fused ms | vs ref |" + (" fused GB/s | % of copy |" if bw else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    rows = []
    for dtype in dtypes:
        for shape in SHAPES[fused]:
            for name, fn, bytes_fwd, bytes_both, (x, b) in cases(shape, dtype, device):
                for kind, nbytes in (("fwd", bytes_fwd), ("fwd+bwd", bytes_both)):
                    runs = {impl: (lambda impl=impl: fn(impl, x, b)) if kind == "fwd" else fwd_bwd(fn, impl, x, b)
                            for impl in ("ref", fused)}
                    times = paired_median_seconds(runs, device, args.repeats)
                    row = (f"| {name} | {list(shape)} | {str(dtype).removeprefix('torch.')} | {kind} | "
                           f"{times['ref'] * 1e3:.2f} | {times[fused] * 1e3:.2f} | {times['ref'] / times[fused]:.2f}x |")
                    if bw:
                        achieved = nbytes / times[fused]
                        row += f" {achieved / 1e9:.0f} | {100 * achieved / bw:.0f}% |"
                    print(row, flush=True)
                    rows.append({"op": name, "shape": list(shape), "dtype": str(dtype).removeprefix("torch."),
                                 "pass": kind, "bytes": nbytes, "ref_s": times["ref"], "fused_s": times[fused]})
    if args.json:
        write_json(args.json, {"device": str(device), "fused": fused, "copy_bytes_per_s": bw, "rows": rows})


if __name__ == "__main__":
    main()
