"""The DP audit's CPU example: the same 200 canaries (single images made to stand out, each included with
probability 1/2) audited in three runs of the same size on SynthFaces at 32 px:

    nonprivate   configs/synthfaces32.yaml: the power check (a D that sees its images 60+ times remembers them)
    dp           per-image DP-SGD on D with a target epsilon of 1: the bound must stay at or below 1
    broken       the same DP config with the noise skipped (LEAKGUARD_BROKEN_DP=skip-noise) while the ledger
                 still claims epsilon 1: the audit must catch it

    python tools/dp_audit_example.py                     # about 15 minutes on 2 CPU cores
    python tools/dp_audit_example.py --kimg 10 --out runs/dp_audit_example

Each is `leakguard dp-audit` in a process of its own (the broken switch is read at start); OUT/summary.md
gets the table the README shows.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = ["data.synthfaces.num_identities=100", "data.synthfaces.images_per_identity=2"]   # 200 base images
DP = ["privacy.unit=image", "privacy.target_epsilon=1", "privacy.expected_batch=16", "model.mbstd_channels=0",
      "privacy.delta=1e-5"]
ARMS = {"nonprivate": ("configs/synthfaces32.yaml", ["--unit", "image"], {}),
        "dp": ("configs/synthfaces32-dp.yaml", [], {}),
        "broken": ("configs/synthfaces32-dp.yaml", [], {"LEAKGUARD_BROKEN_DP": "skip-noise"})}


def run_arm(name: str, out: Path, kimg: float, canaries: int) -> dict:
    config, flags, env = ARMS[name]
    folder = out / name
    if not (folder / "report.json").is_file():
        overrides = [*BASE, f"train.kimg={kimg}", f"train.snapshot_kimg={kimg}", "train.progress=false"]
        if name != "nonprivate":
            overrides += DP
        cmd = [sys.executable, "-m", "training.cli", "dp-audit", "--config", str(REPO / config), *flags,
               "--canary-count", str(canaries), "--canary-seed", "0", "--matcher", f"synth={synth_matcher()}",
               "--fakes", "1000", "--out", str(folder), *overrides]
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, **env})
    return json.loads((folder / "report.json").read_text())


def synth_matcher() -> Path:
    """The demo's calibrated synth matcher (tools/demo_data.py; trained on first use), for the release score."""
    sys.path.insert(0, str(REPO))
    from tools.demo_data import data, matcher
    return matcher("synth", data())


def table(reports: dict) -> str:
    rows = ["| run | claimed epsilon (delta) | score | epsilon lower bound (95%) | guesses in/out, correct | verdict |",
            "|---|---|---|---:|---|---|"]
    for name, r in reports.items():
        c = r["claimed"]
        claim = f"{c['epsilon']:.3f} ({c['delta']:g})" if c else "none (no DP)"
        for score, b in r["bounds"].items():
            best = b["best"]
            rows.append(f"| {name} | {claim} | {score} | {b['epsilon_lower_bound']:.3f} | {best['k_plus']}/"
                        f"{best['k_minus']}, {best['correct']} of {best['guesses']} | {r['verdicts'][score]} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kimg", type=float, default=15.0)
    ap.add_argument("--canaries", type=int, default=200)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "dp_audit_example")
    args = ap.parse_args(argv)
    reports = {name: run_arm(name, args.out, args.kimg, args.canaries) for name in args.arms}
    text = table(reports)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
