"""The DP example's table and grids (tools/dp_example.py runs the arms; this reads their reports).

    write_summary(out, results, networks, fmr)   # out/summary.json, out/summary.md, out/grid_<arm>.png

results: {arm: {"audit": report.json, "fidelity": fidelity.json or None}}, with the arm "null" the audit
of faces of people never trained on. Every number is read from those reports and release.pt's privacy
record; nothing is computed here but the layout.
"""
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from leakguard.audit.images import ImageFiles
from leakguard.privacy.record import read_privacy_record
from training.data.images import make_grid
from training.inference import generate, load_generator

JUDGE, SECOND = "synth_b", "synth"   # the held-out matcher (no arm used it) and the second one
GRID_SEEDS = list(range(10000, 10064))  # not among the judged fakes' seeds


def _row_at(rows: list, fmr: float) -> dict | None:
    return next((r for r in rows if math.isclose(r["fmr"], fmr)), None)


def _leak(audit: dict, matcher: str, fmr: float) -> dict:
    row = _row_at(audit["matchers"][matcher]["leakage"], fmr)
    return {"rate": row["leak_rate"], "ci": row["leak_rate_ci"], "chance": row["chance_rate"],
            "supported": row["supported"]}


def _faces(audit: dict, fmr: float) -> dict | None:
    manifold = (audit.get("faces") or {}).get("manifold") or {}
    if not manifold:
        return None
    entry = next(iter(manifold.values()))
    row = _row_at(entry["leakage"].get(JUDGE, []), fmr)
    return {"share": entry["share"], "share_ci": entry["share_ci"], "count": entry["count"],
            "mostly_not_faces": entry["mostly_not_faces"],
            "leak_rate": row["leak_rate"] if row else None, "leak_rate_ci": row["leak_rate_ci"] if row else None}


def oracle_epsilon(record: dict) -> float | None:
    """ε of the record's schedule by Google's dp-accounting (RDP), independent of the ledger's Opacus
    accountant; None where dp-accounting is not installed (it is a test dependency)."""
    try:
        import dp_accounting
        from dp_accounting import rdp
    except ImportError:
        return None
    acc = rdp.RdpAccountant()
    for m in record["mechanisms"]:
        acc.compose(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(m["q"], dp_accounting.GaussianDpEvent(m["sigma"])), m["steps"]))
    return float(acc.get_epsilon(record["delta"]))


def _sec_per_kimg(networks: Path) -> float | None:
    stats = networks.parent / "stats.jsonl" if networks.name == "release.pt" else networks.parents[1] / "stats.jsonl"
    if not stats.is_file():
        return None
    times = [json.loads(line).get("Timing/sec_per_kimg") for line in stats.read_text().splitlines()]
    times = [t for t in times if t is not None]
    return float(np.median(times)) if times else None


def arm_row(arm: str, result: dict, networks: Path | None, fmr: float) -> dict:
    audit, fidelity = result["audit"], result["fidelity"]
    row = {"arm": arm, "leak": {m: _leak(audit, m, fmr) for m in (JUDGE, SECOND)}, "faces": _faces(audit, fmr)}
    membership = audit["matchers"][JUDGE].get("membership")
    row["auc"] = {"auc": membership["auc"], "ci": membership["auc_ci"]} if membership else None
    if fidelity is not None:
        prefix, scores = next(iter(fidelity["metrics"].items()))
        row["fidelity"] = {"extractor": prefix, "fd": scores[prefix], "kid": scores[f"{prefix}_kid"],
                           "kid_std": scores[f"{prefix}_kid_std"], "precision": scores[f"{prefix}_precision"],
                           "recall": scores[f"{prefix}_recall"]}
    release = networks.with_name("release.pt") if networks is not None and networks.suffix == ".zip" else networks
    if release is not None and release.suffix == ".pt" and release.is_file():
        record = read_privacy_record(release)
        row["epsilon"] = record["epsilon"] if record else None
        row["delta"] = record["delta"] if record else None
        row["epsilon_dp_accounting"] = oracle_epsilon(record) if record else None
        row["sec_per_kimg"] = _sec_per_kimg(networks) if arm != "public_only" and networks.suffix == ".pt" else None
    return row


def save_grid(networks: Path, path: Path) -> None:
    """64 fakes of a generator (seeds GRID_SEEDS), or the first 64 images of an image set (a PE arm's zip)."""
    if networks.suffix == ".zip":
        pixels = next(ImageFiles(networks).batches(64)).permute(0, 2, 3, 1).numpy()   # [64, H, W, 3] uint8
    else:
        pixels = generate(load_generator(networks), GRID_SEEDS, "cpu")
    grid = make_grid(pixels, cols=8)                              # [H', W', 3]
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(path)


def _ci(v, ci, digits=3) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else f"{v:.{digits}f}"


def markdown(rows: list[dict], fmr: float) -> str:
    head = (f"| arm | ε (δ) | FD synthfaces | KID ×10³ | precision | recall | faces (share in the manifold) | "
            f"leak {JUDGE} @ FMR {fmr:g} | leak among faces | leak {SECOND} | membership AUC ({JUDGE}) | s/kimg |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        f = r.get("fidelity")
        eps = r.get("epsilon")
        eps_text = "—" if r["arm"] == "null" else ("∞ (no DP)" if eps is None else f"{eps:.2f} ({r['delta']:g})")
        if r.get("epsilon_dp_accounting") is not None:
            eps_text += f"; dp-accounting {r['epsilon_dp_accounting']:.2f}"
        faces = r["faces"]
        face_text = "—" if faces is None else (_ci(faces["share"], faces["share_ci"], 2)
                                               + (" **not faces**" if faces["mostly_not_faces"] else ""))
        among = "—" if faces is None else _ci(faces["leak_rate"], faces["leak_rate_ci"])
        lines.append("| " + " | ".join([
            r["arm"], eps_text,
            "—" if f is None else f"{f['fd']:.2f}",
            "—" if f is None else f"{1e3 * f['kid']:.2f} ± {1e3 * f['kid_std']:.2f}",
            "—" if f is None else f"{f['precision']:.3f}",
            "—" if f is None else f"{f['recall']:.3f}",
            face_text,
            _ci(r["leak"][JUDGE]["rate"], r["leak"][JUDGE]["ci"]),
            among,
            _ci(r["leak"][SECOND]["rate"], r["leak"][SECOND]["ci"]),
            "—" if r.get("auc") is None else _ci(r["auc"]["auc"], r["auc"]["ci"]),
            "—" if r.get("sec_per_kimg") is None else f"{r['sec_per_kimg']:.1f}"]) + " |")
    return head + "\n".join(lines) + "\n"


PE_STRIP = ("public_only", "pe8_s0", "pe1", "dp8_s0", "dp1")   # docs/private_evolution.md's grids, left to right


def side_by_side(grids: list[Path], path: Path, size: int = 256, gap: int = 8) -> None:
    """The grids scaled to size x size, in a row with white gaps between them (a JPEG for the docs)."""
    strip = Image.new("RGB", (len(grids) * size + (len(grids) - 1) * gap, size), "white")
    for i, grid in enumerate(grids):
        strip.paste(Image.open(grid).convert("RGB").resize((size, size), Image.LANCZOS), (i * (size + gap), 0))
    strip.save(path, quality=90)


def write_summary(out: Path, results: dict, networks: dict, fmr: float) -> list[dict]:
    rows = [arm_row(arm, result, networks.get(arm), fmr) for arm, result in results.items()]
    for arm, path in networks.items():
        grid = out / f"grid_{arm}.png"
        if path.is_file() and not grid.is_file():
            save_grid(path, grid)
    strip = [out / f"grid_{arm}.png" for arm in PE_STRIP]
    if all(p.is_file() for p in strip):
        side_by_side(strip, out / "pe_grids.jpg")
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    text = markdown(rows, fmr)
    (out / "summary.md").write_text(text)
    print(text)
    return rows
