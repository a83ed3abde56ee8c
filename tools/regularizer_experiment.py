"""Does the identity-leakage regularizer work? Baseline and regularized StyleGAN2 runs on SynthFaces with
an over-represented person, the same seed and kimg, regularized with `synth` and audited with matchers
it never trained against (`synth_b`, `dlib`) as well as `synth` (marked as the regularizing one).

    python tools/regularizer_experiment.py                      # weights 0 (baseline), 5, 20; 30 kimg each
    python tools/regularizer_experiment.py --weights 0 5 --kimg 20 --out runs/regexp

Data: SynthFaces at 32 px, people 0..49 with 10 images each, except person 0 with 500 (half of the
990 training images: the over-represented person of "This Person (Probably) Exists"). Members for the
membership attack: people 1..49, their images 10..14 (never trained on); non-members: people
1000..1048. The matchers and the fidelity features are the demo's (tools/demo_data.py: trained on
people 100000.., calibrated on 200000..; features on 300000..). Each arm is an ordinary `leakguard
train` run; a finished arm is not trained again (delete its folder to redo it). Results go to
OUT/results.json, OUT/results.md and OUT/most_leaking.png (each arm's fakes that score highest under
synth_b, beside the training image they match); docs/regularizer.md quotes them.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tools.demo_data import data as demo_data, matcher as demo_matcher  # noqa: E402
from training import rundir  # noqa: E402
from training.cli import main  # noqa: E402
from training.data.build import export_zip  # noqa: E402
from training.data.zip_format import DatasetZipWriter, Record  # noqa: E402
from training.synthfaces import SynthFaces  # noqa: E402
from training.synthfaces.feature_net import ensure_synthfaces_features  # noqa: E402

PEOPLE, PER, OVERREP, OVERREP_IMAGES = 50, 10, 0, 500
TRAIN = [f"data.synthfaces.num_identities={PEOPLE}", f"data.synthfaces.images_per_identity={PER}",
         f"data.synthfaces.overrep_identity={OVERREP}", f"data.synthfaces.overrep_images={OVERREP_IMAGES}"]
FMR = 1e-3


def sets(root: Path) -> dict[str, Path]:
    """train.zip (exactly the training set), members.zip and nonmembers.zip, written once."""
    root.mkdir(parents=True, exist_ok=True)
    out = {k: root / f"{k}.zip" for k in ("train", "members", "nonmembers")}
    if not out["train"].is_file():
        export_zip(out["train"], SynthFaces(32, num_identities=PEOPLE, images_per_identity=PER,
                                            overrep_identity=OVERREP, overrep_images=OVERREP_IMAGES, seed=0))
    if not out["members"].is_file():
        faces = SynthFaces(32, num_identities=PEOPLE - 1, images_per_identity=PER + 5, identity_offset=1, seed=0)
        keep = faces.image_indices >= PER
        with DatasetZipWriter(out["members"]) as w:
            for img, i in zip(faces.render_all()[keep], faces.identities[keep]):
                w.add(Record(np.ascontiguousarray(img.transpose(1, 2, 0)), identity=int(i)))
    if not out["nonmembers"].is_file():
        export_zip(out["nonmembers"], SynthFaces(32, num_identities=PEOPLE - 1, images_per_identity=5,
                                                 identity_offset=1000, seed=0))
    return out


def train_arm(out: Path, weight: float, kimg: float, synth: Path, bank: str) -> Path:
    """The arm's run folder, trained to `kimg` unless its final snapshot is there."""
    name = f"w{weight:g}" + (f"-{bank}" if weight > 0 else "")
    runs = out / "runs"
    existing = sorted(runs.glob(f"{name}-*"))
    final = f"snapshot-{round(kimg * 1000):010d}.pt"
    for run in existing:
        if (run / rundir.CHECKPOINTS / final).is_file():
            return run
    reg = [f"leakage_reg.weight={weight}", f"leakage_reg.matchers=[synth={synth}]", f"leakage_reg.bank={bank}"] \
        if weight > 0 else []
    code = main(["train", "--config", str(REPO / "configs" / "synthfaces32.yaml"), f"run_dir={runs}", f"name={name}",
                 f"train.kimg={kimg}", f"train.snapshot_kimg={kimg}", "train.progress=false", *TRAIN, *reg])
    if code != 0:
        raise SystemExit(f"training arm {name} failed (exit {code})")
    return sorted(runs.glob(f"{name}-*"))[-1]


def audit_arm(run: Path, kimg: float, files: dict, matchers: dict, features: Path) -> dict:
    """audit/ (synth, synth_b; dlib in its own call) and fidelity/ of the arm's final snapshot."""
    snap = run / rundir.CHECKPOINTS / f"snapshot-{round(kimg * 1000):010d}.pt"
    common = ["--generator", str(snap), "--seeds", "0-999", "--training", str(files["train"]), "--force"]
    membership = ["--members", str(files["members"]), "--nonmembers", str(files["nonmembers"])]
    chosen = [a for name, w in matchers.items() for a in ("--matcher", f"{name}={w}")]
    results = {}
    for folder, argv in (("audit", chosen), ("audit_dlib", ["--matcher", "dlib"])):
        done = (run / folder / "report.json").is_file() or \
            main(["audit", *common, *membership, *argv, "--out", str(run / folder), "--bootstrap", "500"]) == 0
        if done:
            results.update(json.loads((run / folder / "report.json").read_text())["matchers"])
    if not (run / "fidelity" / "fidelity.json").is_file():
        main(["fidelity", *common, "--features", f"synthfaces={features}", "--out", str(run / "fidelity")])
    fidelity = json.loads((run / "fidelity" / "fidelity.json").read_text())
    return {"audit": results, "fidelity": fidelity}


def null_rates(out: Path, files: dict, matchers: dict) -> dict:
    """The empirical chance rate: 1,000 faces of people never in training (ids 5000..5999, one image each)
    audited like a generator's, per matcher: what a generator that leaks nothing scores."""
    novel = out / "data" / "novel.zip"
    if not novel.is_file():
        export_zip(novel, SynthFaces(32, num_identities=1000, images_per_identity=1, identity_offset=5000, seed=0))
    rates = {}
    for folder, argv in (("null", [a for n, w in matchers.items() for a in ("--matcher", f"{n}={w}")]),
                         ("null_dlib", ["--matcher", "dlib"])):
        if (out / folder / "report.json").is_file() or main(["audit", "--generated", str(novel), "--training",
                                                             str(files["train"]), *argv, "--out", str(out / folder),
                                                             "--bootstrap", "500"]) == 0:
            for name, section in json.loads((out / folder / "report.json").read_text())["matchers"].items():
                leak = next(r for r in section["leakage"] if r["fmr"] == FMR)
                rates[name] = {"leak_rate": leak["leak_rate"], "leak_rate_ci": leak["leak_rate_ci"]}
    return rates


def sec_per_kimg(run: Path) -> float:
    values = [json.loads(line).get("Timing/sec_per_kimg") for line in (run / "stats.jsonl").read_text().splitlines()]
    values = [v for v in values if v]
    return float(np.median(values))


def summarize(weight: float, run: Path, found: dict) -> dict:
    row = {"weight": weight, "run": str(run), "bank": run.name.split("-")[1] if weight > 0 else None,
           "sec_per_kimg": sec_per_kimg(run), "matchers": {}}
    for name, section in found["audit"].items():
        leak = next(r for r in section["leakage"] if r["fmr"] == FMR)
        ranks = [t["identity"] for t in section["top_leakers"]]
        counts = {t["identity"]: t["count"] for t in section["top_leakers"]}
        row["matchers"][name] = {
            "regularizing": name == "synth", "leak_rate": leak["leak_rate"], "leak_rate_ci": leak["leak_rate_ci"],
            "chance_rate_bounds": leak["chance_rate_bounds"], "threshold": leak["threshold"],
            "auc": (section["membership"] or {}).get("auc"), "auc_ci": (section["membership"] or {}).get("auc_ci"),
            "overrep_rank": ranks.index(OVERREP) + 1 if OVERREP in ranks else None,
            "overrep_leaks": counts.get(OVERREP, 0), "leak_counts_fmr": section["leak_counts_fmr"],
            "top_pairs": section["top_pairs"][:6]}
    row["fidelity"] = found["fidelity"]["metrics"]["fd_synthfaces"]
    return row


def main_experiment(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 5.0, 20.0])
    ap.add_argument("--bank", choices=["images", "centroid"], default="images",
                    help="the regularizer's bank (images: the audit's own rule, the max over a person's images)")
    ap.add_argument("--kimg", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "regularizer_experiment")
    args = ap.parse_args(argv)
    demo = demo_data()
    matchers = {name: demo_matcher(name, demo) for name in ("synth", "synth_b")}
    features = ensure_synthfaces_features(None, resolution=32)
    files = sets(args.out / "data")
    rows = []
    for w in args.weights:
        start = time.perf_counter()
        run = train_arm(args.out, w, args.kimg, matchers["synth"], args.bank)
        print(f"arm w={w:g}: {run} ({time.perf_counter() - start:.0f} s)", flush=True)
        rows.append(summarize(w, run, audit_arm(run, args.kimg, files, matchers, features)))
        (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    null = null_rates(args.out, files, matchers)
    (args.out / "null.json").write_text(json.dumps(null, indent=1))
    from tools.regularizer_report import write_report
    write_report(args.out, rows, files["train"], null)
    print(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'} and {args.out / 'most_leaking.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main_experiment())
