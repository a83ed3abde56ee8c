"""What differential privacy costs per D step: the private D step (per-person or per-image gradients
per layer, or by torch.func on R1 steps; clipping, noise; R1 folded in every r1_interval steps) against
the non-private D step with its lazy R1 on the same config, timed in one run and printed as ratios. Then
the per-unit gradient methods (per layer, torch.func) against the obviously-correct batch-of-one loop on
the same units. With --freeze-d N also the two steps with D's first N blocks frozen (train.freeze_d:
per-unit gradients of the trained blocks only), side by side with the rest.

  python bench/dp_step.py                                   # configs/synthfaces32-dp-scratch.yaml, the CPU preset
  python bench/dp_step.py --config configs/ffhq256-dp.yaml data.path=ffhq256.zip
  python bench/dp_step.py --json dp.json                    # the numbers also as JSON (bench/gpu_check.py)
  python bench/dp_step.py --freeze-d 2                      # and both steps with D's first 2 blocks frozen
"""
import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import paired_median_seconds  # noqa: E402
from leakguard.atomic import write_json  # noqa: E402
from training import losses, steps  # noqa: E402
from training.config import check, load_config  # noqa: E402
from training.data.loader import open_dataset  # noqa: E402
from training.distributed import Dist, pick_device  # noqa: E402
from training.dp.per_unit import per_unit_grads, trainable  # noqa: E402
from training.loop import real_stream  # noqa: E402
from training.report import Reporter  # noqa: E402
from training.state import build_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cycle(fn_steps):
    """Runs a list of step closures in order: one R1 cycle."""
    def run():
        for fn in fn_steps:
            fn()
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "configs" / "synthfaces32-dp-scratch.yaml"))
    ap.add_argument("--repeats", type=int, default=5, help="timed R1 cycles per contender")
    ap.add_argument("--json", metavar="OUT", help="also write the times to OUT as JSON (seconds)")
    ap.add_argument("--freeze-d", type=int, default=0, help="also time both steps with D's first N blocks frozen")
    ap.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides")
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    if cfg.privacy.unit == "none":
        raise SystemExit(f"{args.config}: privacy.unit is none; give a DP config")
    device = pick_device(cfg.train.device)
    dataset = open_dataset(cfg.data)

    def state(private_run: bool, freeze: int):
        c = copy.deepcopy(cfg)
        c.train.freeze_d = freeze
        if not private_run:
            c.privacy.unit = "none"
        check(c)
        return build_state(c, dataset, Dist(device=device), Reporter(None))

    private, plain = state(True, 0), state(False, 0)
    frozen = {"private": state(True, args.freeze_d), "plain": state(False, args.freeze_d)} if args.freeze_d else {}
    for other in (plain, *frozen.values()):
        other.D.load_state_dict(private.D.state_dict())
        other.G.load_state_dict(private.G.state_dict())

    interval = cfg.loss.r1_interval if cfg.loss.r1_gamma > 0 else 1
    stream = real_stream(private, dataset)
    units = [next(stream)[0] for _ in range(interval)]  # one R1 cycle of sampled units, loaded once
    chunks = next(real_stream(plain, dataset))
    ids = steps.fake_chunks(private)
    def dp_cycle(s):
        return cycle([lambda u=u: steps.dp_d_step(s, ids, u) for u in units])

    def plain_cycle(s):
        plain_steps = [lambda: steps.d_step(s, chunks)] * interval
        if cfg.loss.r1_gamma > 0:
            plain_steps.append(lambda: steps.r1_step(s, chunks, gain=interval))
        return cycle(plain_steps)

    contenders = {"plain": plain_cycle(plain), "private": dp_cycle(private)}
    if frozen:
        contenders.update({"plain_frozen": plain_cycle(frozen["plain"]), "private_frozen": dp_cycle(frozen["private"])})
    times = paired_median_seconds(contenders, device, args.repeats, warmup=1)

    p = private.privacy
    images = sum(float(c.weight.gt(0).sum()) for u in units for c in u) / interval
    print(f"{Path(args.config).stem}: {cfg.data.resolution}px, privacy.unit={p.unit}, "
          f"expected {p.expected_batch} units "
          f"(q={p.q:.3g}) x up to {p.k} images, {2 * p.units_per_chunk} units per pass "
          f"({p.units_per_chunk} on R1 steps), R1 every {interval} steps, "
          f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
                               else f", {torch.get_num_threads()} threads"))
    print(f"{'D step (R1 amortized)':<34}{'ms/step':>9}{'real imgs':>11}{'ratio':>8}")
    print(f"{'non-private d_step + lazy R1':<34}{times['plain'] / interval * 1e3:>9.1f}{cfg.train.batch:>11}"
          f"{1:>7.2f}x")
    print(f"{'private dp_d_step':<34}{times['private'] / interval * 1e3:>9.1f}{images:>11.1f}"
          f"{times['private'] / times['plain']:>7.2f}x")
    if frozen:
        trained = sum(p.numel() for n, p in frozen["private"].D.named_parameters()
                      if n not in frozen["private"].d_frozen)
        whole = sum(p.numel() for p in private.D.parameters())
        print(f"with D's first {args.freeze_d} blocks frozen ({trained:,} of {whole:,} parameters trained):")
        print(f"{'non-private, frozen':<34}{times['plain_frozen'] / interval * 1e3:>9.1f}{cfg.train.batch:>11}"
              f"{1:>7.2f}x")
        print(f"{'private, frozen':<34}{times['private_frozen'] / interval * 1e3:>9.1f}{images:>11.1f}"
              f"{times['private_frozen'] / times['plain_frozen']:>7.2f}x   (target <= 1.3x; "
              f"{times['private_frozen'] / times['private']:.2f}x the whole-D private step)")

    chunk = max((c for u in units for c in u), key=lambda c: len(c.img))
    D = private.D.requires_grad_(True)

    def per_layer():
        per_unit_grads(D, chunk.img, chunk.c, chunk.weight, 0.0, method="per_layer")

    def vmapped():
        per_unit_grads(D, chunk.img, chunk.c, chunk.weight, 0.0, method="vmap")

    def loop():
        for u in range(len(chunk.img)):
            D.zero_grad(set_to_none=True)
            c = chunk.c[u] if chunk.c.shape[-1] else None
            (chunk.weight[u] * losses.d_logistic_real(D(chunk.img[u], c))).sum().backward()
            [p.grad.clone() for _, p in trainable(D) if p.grad is not None]

    t = paired_median_seconds({"per_layer": per_layer, "vmap": vmapped, "loop": loop}, device, args.repeats)
    print(f"{'per-unit gradients of ' + str(len(chunk.img)) + ' units':<34}{'ms':>9}{'':>11}{'ratio':>8}")
    print(f"{'batch-of-one loop (fused ops)':<34}{t['loop'] * 1e3:>9.1f}{'':>11}{1:>7.2f}x")
    print(f"{'per layer, one batched pass':<34}{t['per_layer'] * 1e3:>9.1f}{'':>11}"
          f"{t['per_layer'] / t['loop']:>7.2f}x")
    print(f"{'torch.func vmap(grad) (reference)':<34}{t['vmap'] * 1e3:>9.1f}{'':>11}{t['vmap'] / t['loop']:>7.2f}x")
    if args.json:
        write_json(args.json, {"config": Path(args.config).stem, "resolution": cfg.data.resolution,
                               "device": str(device), "unit": p.unit, "r1_interval": interval,
                               "plain_s_per_step": times["plain"] / interval,
                               "private_s_per_step": times["private"] / interval, "plain_images": cfg.train.batch,
                               "private_images": images, "per_unit_units": len(chunk.img),
                               "per_layer_s": t["per_layer"], "vmap_s": t["vmap"], "loop_s": t["loop"],
                               "freeze_d": args.freeze_d,
                               **{f"{k}_s_per_step": v / interval for k, v in times.items() if k.endswith("_frozen")}})


if __name__ == "__main__":
    main()
