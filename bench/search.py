"""Exact top-1 cosine search (leakguard.audit.search) against a plain full-matrix computation, on this
device: queries per second and peak working memory, with ratios against the full matrix measured in
the same run, and how often the two agree.

The full matrix (q @ bank.T, then max per row) is the fastest way when it fits, but it is not exact:
its float32 scores depend on the BLAS's chunking, and it needs M x N x 4 bytes (40 GB for 10k x 1M).
It is skipped, and the output says so, when it would take more than --baseline-gib.
The embeddings are random unit rows (nothing to load); search time hardly depends on their values.

  python bench/search.py                                  # 10k queries x 1M bank x 512-d: GPU-sized
  python bench/search.py --bank 100000                    # CPU-sized, the full matrix fits
  python bench/search.py --bank 200000 --identities 10    # also the per-identity max, 10 images each
  python bench/search.py --json search.json               # the rows also as JSON (bench/gpu_check.py reads it)
"""
import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from leakguard.atomic import write_json  # noqa: E402
from leakguard.audit.search import chunk_sizes, topk_cosine, topk_identities  # noqa: E402

GIB = 2 ** 30


def rss() -> int:
    """This process's resident memory now (bytes), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available(device) -> int:
    """Bytes free for a new allocation: CUDA free memory, or MemAvailable of the machine."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


def measured(fn, device, rounds):
    """(result, median seconds, peak working GiB) over `rounds` calls (after the warm-up in main)."""
    runs = [measured_once(fn, device) for _ in range(rounds)]
    return runs[-1][0], statistics.median(r[1] for r in runs), max(r[2] for r in runs)


def measured_once(fn, device):
    """(result, seconds, peak working GiB) of one call: CUDA peak allocation above what was allocated
    before, or on the CPU the peak resident memory above the resident memory before (polled every 2 ms)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize(device)
        return out, time.perf_counter() - t0, (torch.cuda.max_memory_allocated(device) - base) / GIB
    base, peak, done = rss(), [0], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)
    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    return out, seconds, max(0, max(peak[0], rss()) - base) / GIB


def unit_rows(n, d, device, seed, step=1 << 16):
    """[n, d] random unit rows, made in steps so no float64 or second copy of the whole bank exists."""
    g = torch.Generator(device=device).manual_seed(seed)
    out = torch.empty(n, d, device=device)
    for i in range(0, n, step):
        out[i:i + step] = F.normalize(torch.randn(min(step, n - i), d, generator=g, device=device), dim=1)
    return out


def full_matrix_top1(q, b):
    s = q @ b.T                                  # [M, N]: the whole score matrix at once
    return s.max(dim=1)


def matmul_floor(q, b, mq, nb):
    """The float32 products of the exact search alone, in its chunk shapes ([mq, D] @ [D, nb] blocks into one
    reused buffer): no search can be faster, so this is the device's matmul rate for this problem."""
    buf = torch.empty(mq, nb, device=q.device)
    for i in range(0, len(q), mq):
        qc = q[i:i + mq]
        for j in range(0, len(b), nb):
            bc = b[j:j + nb]
            torch.mm(qc, bc.T, out=buf[:len(qc), :len(bc)])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--bank", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--memory-gib", type=float, default=1.0, help="working memory of the exact search (GiB)")
    ap.add_argument("--baseline-gib", type=float, default=None,
                    help="run the full matrix only when it takes at most this (default: half the free memory)")
    ap.add_argument("--identities", type=int, default=0, metavar="IMAGES",
                    help="also time topk_identities (max) with this many bank images per identity")
    ap.add_argument("--rounds", type=int, default=1, help="timed calls per method (the median is shown)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", metavar="OUT", help="also write the rows to OUT as JSON (seconds, GiB)")
    args = ap.parse_args()
    device = torch.device(args.device)
    m, n, d = args.queries, args.bank, args.dim
    memory = int(args.memory_gib * GIB)
    q, b = unit_rows(m, d, device, 1), unit_rows(n, d, device, 2)
    topk_cosine(q[:64], b[:4096], 1)             # warm-up: kernels, allocator, BLAS threads

    mq, nb = chunk_sizes(m, n, memory)
    where = (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f", {torch.get_num_threads()} threads")
    print(f"top-1 of {m} queries x {n} bank rows x {d}-d float32, device {device}{where}; "
          f"exact search chunks {mq} x {nb} ({args.memory_gib:g} GiB budget)")
    print(f"{'method':<34}{'seconds':>9}{'queries/s':>11}{'vs full':>9}{'peak GiB':>10}")
    exact, sec_exact, mem_exact = measured(lambda: topk_cosine(q, b, 1, memory_bytes=memory), device, args.rounds)
    rows = [("exact chunked (topk_cosine)", sec_exact, mem_exact)]
    _, sec_floor, mem_floor = measured(lambda: matmul_floor(q, b, mq, nb), device, args.rounds)
    rows.append(("matmul alone, same chunks", sec_floor, mem_floor))
    if args.identities > 0:
        ids = torch.arange(n, device=device) // args.identities
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(3)).to(device)   # not grouped in the bank
        _, sec, mem = measured(lambda: topk_identities(q, b, ids[perm], 1, memory_bytes=memory), device, args.rounds)
        rows.append((f"identities, max over {args.identities} (exact)", sec, mem))

    need = m * n * 4
    limit = args.baseline_gib * GIB if args.baseline_gib is not None else available(device) / 2
    full = None
    if need <= limit:
        full, sec_full, mem_full = measured(lambda: full_matrix_top1(q, b), device, args.rounds)
        rows.append(("full matrix (q @ b.T, max)", sec_full, mem_full))
    for name, sec, mem in rows:
        ratio = f"{sec / sec_full:>8.2f}x" if full is not None else f"{'-':>9}"
        print(f"{name:<34}{sec:>9.2f}{m / sec:>11.0f}{ratio}{mem:>10.2f}")
    flop = 2 * m * n * d
    print(f"exact search: {flop / sec_exact / 1e12:.2f} TFLOP/s, {100 * sec_floor / sec_exact:.0f}% of the float32 "
          f"matmul rate in the same chunks ({flop / sec_floor / 1e12:.2f} TFLOP/s; target >= 70%)")
    found = {"device": str(device), "queries": m, "bank": n, "dim": d, "memory_gib": args.memory_gib, "flop": flop,
             "chunks": [mq, nb],
             "rows": [{"method": name, "seconds": sec, "peak_gib": mem} for name, sec, mem in rows]}
    if full is None:
        print(f"full matrix skipped: it needs {need / GIB:.1f} GiB, more than the {limit / GIB:.1f} GiB allowed "
              "(--baseline-gib); scale down with --bank or --queries")
    else:
        same = (full.indices == exact.indices[:, 0]).float().mean().item()
        diff = (full.values - exact.scores[:, 0]).abs().max().item()
        print(f"agreement: same top-1 row for {same:.4%} of queries; top-1 scores differ by up to {diff:.2g} "
              "(full matrix: chunk-dependent float32; exact: the fixed-order score)")
        found.update(same_top1=same, max_score_diff=diff)
    if args.json:
        write_json(args.json, found)


if __name__ == "__main__":
    main()
