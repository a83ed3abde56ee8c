"""Speed of the StyleGAN2 networks, as ratios against a baseline measured in the same run.

Baseline: the float32 generator with unfused modulated convolution (how training runs it).
Rows: inference with fused modconv, and on CUDA the fp16 resolutions (num_fp16_res=4, conv_clamp=256)
for G and D. Absolute times are printed too, but only the ratios compare across machines.

  python bench/networks.py                       # 64 px, batch 8 (CPU-friendly)
  python bench/networks.py --res 256 --batch 32  # StyleGAN2-ADA paper256 shapes, on a GPU
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import median_seconds  # noqa: E402
from training.networks import Discriminator, Generator  # noqa: E402


def timed(fn, device, repeats):
    """Median wall time of fn() in milliseconds, after two warm-up calls."""
    return median_seconds(fn, device, repeats) * 1e3


def networks(res, fp16_res, device):
    base = 16384 if res <= 256 else 32768
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=2 if res <= 256 else 8),
                  synthesis_kwargs=dict(channel_base=base, channel_max=512, num_fp16_res=fp16_res,
                                        conv_clamp=256 if fp16_res else None))
    D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=base, channel_max=512,
                      num_fp16_res=fp16_res, conv_clamp=256 if fp16_res else None,
                      epilogue_kwargs=dict(mbstd_group_size=4))
    return G.to(device), D.to(device)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    z = torch.randn(args.batch, 512, device=device)

    def g_train_step(G):
        G.train()
        return lambda: G(z, None).square().mean().backward()

    def g_infer(G, fused):
        G.eval()
        def run():
            with torch.no_grad():
                G(z, None, fused_modconv=fused)
        return run

    def d_train_step(D):
        img = torch.randn(args.batch, 3, args.res, args.res, device=device)
        return lambda: D(img, None).square().mean().backward()

    G32, D32 = networks(args.res, 0, device)
    rows = [("G fwd+bwd, fp32 (baseline)", timed(g_train_step(G32), device, args.repeats)),
            ("G inference, fp32, unfused modconv", timed(g_infer(G32, False), device, args.repeats)),
            ("G inference, fp32, fused modconv", timed(g_infer(G32, True), device, args.repeats)),
            ("D fwd+bwd, fp32", timed(d_train_step(D32), device, args.repeats))]
    if device.type == "cuda":
        G16, D16 = networks(args.res, 4, device)
        rows += [("G fwd+bwd, fp16 x4 res", timed(g_train_step(G16), device, args.repeats)),
                 ("G inference, fp16 x4 res, fused", timed(g_infer(G16, None), device, args.repeats)),
                 ("D fwd+bwd, fp16 x4 res", timed(d_train_step(D16), device, args.repeats))]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"StyleGAN2 networks, {args.res}x{args.res}, batch {args.batch}, {name}, torch {torch.__version__}")
    print(f"{'case':40s} {'ms':>10s} {'vs baseline':>12s}")
    baseline = rows[0][1]
    for label, ms in rows:
        print(f"{label:40s} {ms:10.2f} {baseline / ms:11.2f}x")


if __name__ == "__main__":
    main()
