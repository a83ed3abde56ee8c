"""Speed of the face matchers on this device, as ratios against a baseline matcher measured in the same
run, then the speed of calibration (leakguard.matchers.calibrate) in pairs per second.

Matchers: images per second through Matcher.embed (alignment, network, normalisation, copy to the
CPU) on random FFHQ-sized images already on the device, as a generator hands them over; and, for the
differentiable ones, forward + backward to the pixels (what the leakage regularizer pays). Matchers
whose package or weights are missing are skipped with the reason; torch matchers without weights run
with random weights (allow_random=True), which changes no timing.
Calibration runs on the CPU (numpy) on random clustered unit embeddings.

  python bench/matchers.py                                   # every matcher, 256 px, batch 32
  python bench/matchers.py --device cuda --res 1024 --batch 64
  python bench/matchers.py --matchers arcface_torch synth --weights arcface_torch=ms1mv3_r50/backbone.pth
  python bench/matchers.py --json matchers.json              # the rows also as JSON (bench/gpu_check.py)
  python bench/matchers.py --matchers synth mine --weights mine=model.onnx   # a model file with its spec
  python bench/matchers.py --file-models models/    # also arcface_torch's IResNet-50 saved as .pt and .onnx files
                                                    # (bench/file_models.py), timed as file_pt and file_onnx
"""
import argparse
import inspect
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.args import device as device_arg  # noqa: E402
from bench.args import folder  # noqa: E402
from bench.file_models import runtime_of, write_file_models  # noqa: E402
from bench.timing import median_seconds  # noqa: E402
from leakguard.atomic import write_json  # noqa: E402
from leakguard.matchers import calibrate as calibration  # noqa: E402
from leakguard.matchers.calibrate import calibrate, calibrate_scores, pair_scores  # noqa: E402
from leakguard.matchers.file_matcher import FileMatcher  # noqa: E402
from leakguard.matchers.nets.iresnet import LAYERS  # noqa: E402
from leakguard.matchers.registry import MATCHERS, MatcherConfig, build_matcher, is_known, unknown_message  # noqa: E402
from leakguard.matchers.weights import WeightsMissing  # noqa: E402


def timed(fn, device, repeats):
    """Median seconds of fn() over `repeats` calls after two warm-up calls."""
    return median_seconds(fn, device, repeats)


def build(name, weights, args):
    """(matcher, what its weights are); random weights when none are given and the class allows them."""
    cfg = MatcherConfig(name=name, weights=weights, device=args.device, batch_size=args.batch)
    try:
        m = build_matcher(cfg)
        return m, (f"{Path(weights).name}, {runtime_of(m)}" if isinstance(m, FileMatcher) else weights or "default")
    except WeightsMissing:
        cls = MATCHERS[name]
        if weights is not None or "allow_random" not in inspect.signature(cls).parameters:
            raise
        return cls(device=args.device, batch_size=args.batch, allow_random=True), "random (no weights file)"


def time_matcher(m, images, device, repeats):
    """(seconds per embed call, seconds per forward + backward to the pixels or None where not differentiable)."""
    embed_s = timed(lambda: m.embed(images), device, repeats)
    if not m.differentiable:
        return embed_s, None

    def fwd_bwd():
        x = images.clone().requires_grad_(True)
        m(x).sum().backward()
    return embed_s, timed(fwd_bwd, device, repeats)


def face_batch(args) -> torch.Tensor:
    """[batch, 3, res, res] in [0, 1]: scikit-image's astronaut (a real face), resized, with a little noise per copy,
    for matchers that align faces (dlib landmarks find none in random pixels)."""
    from skimage.data import astronaut
    face = torch.from_numpy(astronaut()).permute(2, 0, 1)[None].float() / 255             # [1, 3, 512, 512]
    face = torch.nn.functional.interpolate(face, size=(args.res, args.res), mode="area")
    noise = torch.randn(args.batch, 3, args.res, args.res, generator=torch.Generator().manual_seed(0))
    return (face + 0.01 * noise).clamp(0, 1)


def bench_matchers(args, device):
    weights = dict(w.split("=", 1) for w in args.weights)
    names = args.matchers or list(MATCHERS)
    if args.file_models:
        files = write_file_models(Path(args.file_models), args.file_arch)
        weights.update({name: str(path) for name, path in files.items()})
        names = [*names, *files]
    images = (face_batch(args) if args.faces else torch.rand(args.batch, 3, args.res, args.res)).to(device) * 2 - 1
    rows, skipped = [], []
    for name in names:
        try:
            m, source = build(name, weights.get(name), args)
        except Exception as err:  # a missing package, weights file or model pack: say which, go on
            skipped.append((name, f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"))
            continue
        embed_s, grad_s = time_matcher(m, images, device, args.repeats)
        rows.append((name, source, m.embedding_dim, args.batch / embed_s, embed_s,
                     None if grad_s is None else args.batch / grad_s))
        del m  # one matcher's weights on the device at a time

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"Matchers: Matcher.embed on {args.batch} {'face' if args.faces else 'random'} {args.res}x{args.res} images "
          f"on {device} (batch_size {args.batch}), {where}, torch {torch.__version__}")
    if not rows:
        print("no matcher could be built")
    else:
        base = next((r for r in rows if r[0] == args.baseline), rows[0])
        print(f"{'matcher':<14}{'weights':<44}{'D':>5}{'img/s':>10}{'ms/batch':>10}{'vs ' + base[0]:>22}"
              f"{'fwd+bwd img/s':>15}")
        for name, source, dim, ips, sec, grad_ips in rows:
            grad = "-" if grad_ips is None else f"{grad_ips:.1f}"
            print(f"{name:<14}{source[:43]:<44}{dim:>5}{ips:>10.1f}{sec * 1e3:>10.1f}{ips / base[3]:>21.2f}x"
                  f"{grad:>15}")
        if base[0] != args.baseline:
            print(f"(baseline {args.baseline} did not run; ratios are against {base[0]})")
    for name, why in skipped:
        print(f"skipped {name}: {why}")
    return {"rows": [{"matcher": name, "weights": source, "dim": dim, "embed_s": sec, "embed_img_per_s": ips,
                      "fwd_bwd_img_per_s": grad_ips} for name, source, dim, ips, sec, grad_ips in rows],
            "skipped": [{"matcher": name, "why": why} for name, why in skipped]}


def bench_calibration(args):
    n_ids = max(2, args.calib_images // args.calib_per_id)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(n_ids, args.calib_dim, generator=g)
    e = centres.repeat_interleave(args.calib_per_id, 0)
    e = torch.nn.functional.normalize(e + 1.5 * torch.randn(e.shape, generator=g), dim=1).numpy()
    ids = np.arange(n_ids).repeat(args.calib_per_id)
    scores = pair_scores(e, ids)
    exact_pairs = len(scores.genuine) + len(scores.impostor)
    sampled = args.calib_sampled
    def sample(dense_gain):
        def run():
            saved, calibration.DENSE_GAIN = calibration.DENSE_GAIN, dense_gain
            try:
                pair_scores(e, ids, max_pairs=1, sample_pairs=sampled, seed=0)
            finally:
                calibration.DENSE_GAIN = saved
        return run

    cases = [("pair scores, exact (chunked matmul)", lambda: pair_scores(e, ids), exact_pairs),
             ("pair scores, sampled, picked from matmul", sample(float("inf")), 2 * sampled),
             ("pair scores, sampled, gathered rows", sample(0), 2 * sampled),
             ("statistics (sort, thresholds, EER, hist)", lambda: calibrate_scores(scores), exact_pairs),
             ("calibrate(), exact, end to end", lambda: calibrate(e, ids), exact_pairs)]
    print(f"\nCalibration (CPU, numpy, {torch.get_num_threads()} torch threads): {len(e)} unit embeddings of "
          f"dimension {args.calib_dim}, {n_ids} identities x {args.calib_per_id}: {len(scores.genuine)} genuine "
          f"+ {len(scores.impostor)} impostor pairs; sampled: {sampled} pairs of each kind (calibrate() picks from "
          f"the matmul when N^2 <= {calibration.DENSE_GAIN} x pairs, else gathers rows)")
    print(f"{'case':<44}{'pairs':>12}{'s':>9}{'Mpairs/s':>10}{'vs exact':>10}")
    base = None
    out = []
    for label, fn, pairs in cases:
        sec = timed(fn, torch.device("cpu"), args.calib_repeats)
        rate = pairs / sec
        base = base or rate
        out.append({"case": label, "pairs": pairs, "seconds": sec})
        print(f"{label:<44}{pairs:>12}{sec:>9.3f}{rate / 1e6:>10.2f}{rate / base:>9.2f}x")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matchers", nargs="*", help=f"names from the registry (default: all of {', '.join(MATCHERS)})")
    ap.add_argument("--weights", nargs="*", default=[], metavar="NAME=PATH", help="a weights file per matcher")
    ap.add_argument("--baseline", default="arcface_torch", help="the matcher the ratios are against")
    ap.add_argument("--res", type=int, default=256, help="input image side (pixels)")
    ap.add_argument("--batch", type=int, default=32, help="images per timed call, and the matchers' batch_size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--calib-images", type=int, default=4000, help="embeddings in the calibration bench")
    ap.add_argument("--calib-per-id", type=int, default=10, help="images per identity")
    ap.add_argument("--calib-dim", type=int, default=512, help="embedding dimension")
    ap.add_argument("--calib-sampled", type=int, default=2_000_000, help="pairs of each kind in the sampled case")
    ap.add_argument("--calib-repeats", type=int, default=3)
    ap.add_argument("--faces", action="store_true", help="a real face (scikit-image's astronaut) instead of random "
                                                          "pixels: for matchers that align with landmarks")
    ap.add_argument("--file-models", metavar="DIR", help="also write arcface_torch's IResNet-50 (random weights) "
                                                          "as TorchScript and ONNX files with specs into DIR and "
                                                          "time them as file_pt and file_onnx")
    ap.add_argument("--file-arch", default="r50", choices=list(LAYERS), help="the IResNet depth of --file-models")
    ap.add_argument("--skip-matchers", action="store_true", help="only the calibration table")
    ap.add_argument("--json", metavar="OUT", help="also write both tables to OUT as JSON")
    args = ap.parse_args()
    weights = dict(w.split("=", 1) for w in args.weights if "=" in w)
    for w in args.weights:
        if "=" not in w:
            ap.error(f"--weights {w!r}: expected NAME=PATH")
    for name in args.matchers or []:
        if not is_known(name, weights.get(name)):   # a registry name, or any name for a model file with a spec
            ap.error(unknown_message(name, weights.get(name)))
    device = device_arg(ap, args.device)
    if args.file_models:
        folder(ap, "--file-models", args.file_models)
    torch.backends.cudnn.benchmark = True
    found = {"device": str(device), "res": args.res, "batch": args.batch}
    if not args.skip_matchers:
        found.update(bench_matchers(args, device))
    found["calibration"] = bench_calibration(args)
    if args.json:
        write_json(args.json, found)


if __name__ == "__main__":
    main()
