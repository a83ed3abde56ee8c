"""The regularizer experiment's table and grid (tools/regularizer_experiment.py writes results.json):

    python tools/regularizer_report.py runs/regularizer_experiment     # results.md and most_leaking.png again
"""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from leakguard.audit.images import ImageFiles  # noqa: E402

GRID_PAIRS = 6


def _pct(x, ci=None) -> str:
    return f"{100 * x:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def table(rows: list[dict], null: dict) -> str:
    """One line per (arm, matcher): leak rate at FMR 1e-3 with its interval, the empirical null (faces of
    people never in training) and the chance band, membership AUC, the over-represented person's rank and
    leak count; then fidelity and time per arm."""
    base = rows[0]["sec_per_kimg"]
    out = ["| weight | matcher | leak rate @ FMR 1e-3 [95% CI] | null: new people [95% CI] | chance band | "
           "membership AUC [95% CI] | person 0: rank, leaks |", "|---:|---|---|---|---|---|---|"]
    for r in rows:
        for name, m in r["matchers"].items():
            lo, hi = m["chance_rate_bounds"]
            auc = f"{m['auc']:.3f} [{m['auc_ci'][0]:.3f}, {m['auc_ci'][1]:.3f}]" if m["auc"] is not None else "-"
            rank = f"{m['overrep_rank'] or '> 20'}, {m['overrep_leaks']}"
            label = f"`{name}`" + (" (regularizing)" if m["regularizing"] else " (held out)")
            n = null.get(name)
            base_rate = _pct(n["leak_rate"], n["leak_rate_ci"]) if n else "-"
            out.append(f"| {r['weight']:g} | {label} | {_pct(m['leak_rate'], m['leak_rate_ci'])} | {base_rate} | "
                       f"{_pct(lo)}-{_pct(hi)} | {auc} | {rank} |")
    out += ["", "| weight | fd_synthfaces | KID (± std) | precision | recall | sec/kimg (median) | vs baseline |",
            "|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        f = r["fidelity"]
        out.append(f"| {r['weight']:g} | {f['fd_synthfaces']:.2f} | {f['fd_synthfaces_kid']:.3f} ± "
                   f"{f['fd_synthfaces_kid_std']:.3f} | {f['fd_synthfaces_precision']:.3f} | "
                   f"{f['fd_synthfaces_recall']:.3f} | {r['sec_per_kimg']:.2f} | {r['sec_per_kimg'] / base:.2f}x |")
    return "\n".join(out) + "\n"


def grid(rows: list[dict], training: ImageFiles, matcher: str = "synth_b", scale: int = 3) -> Image.Image:
    """Per arm (one row), its GRID_PAIRS best-scoring fakes under `matcher`, each beside the training image it
    matches: the faces a release would be judged by."""
    tiles = []
    for r in rows:
        audit = Path(r["run"]) / "audit" / "report.html"
        assert audit.exists(), audit
        pairs = r["matchers"][matcher]["top_pairs"][:GRID_PAIRS]
        snap = sorted((Path(r["run"]) / "checkpoints").glob("snapshot-*.pt"))[-1]
        from training.inference import generate, load_generator
        G = load_generator(snap)
        seeds = [int(p["generated_name"].removeprefix("seed")) for p in pairs]
        fakes = generate(G, seeds, "cpu")
        row = [np.concatenate([fakes[i], training.image(p["training_index"]),
                               np.full((fakes.shape[1], 4, 3), 255, np.uint8)], axis=1) for i, p in enumerate(pairs)]
        tiles.append(np.concatenate(row, axis=1))
    image = np.concatenate([np.pad(t, ((0, 4), (0, 0), (0, 0)), constant_values=255) for t in tiles], axis=0)
    return Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)


def write_report(out: Path, rows: list[dict], training_path: Path, null: dict) -> None:
    (out / "results.md").write_text(table(rows, null))
    grid(rows, ImageFiles(training_path)).save(out / "most_leaking.png")


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "runs" / "regularizer_experiment"
    null = json.loads((folder / "null.json").read_text()) if (folder / "null.json").is_file() else {}
    write_report(folder, json.loads((folder / "results.json").read_text()), folder / "data" / "train.zip", null)
    print((folder / "results.md").read_text())
