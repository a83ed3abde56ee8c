"""The DP audit's CPU example: the same 200 canaries (single images made to stand out, each included with
probability 1/2) audited in three runs of the same size on SynthFaces at 32 px:

    nonprivate   configs/synthfaces32.yaml, the same canaries without DP
    dp           per-image DP-SGD on D with a target epsilon of 1: the bound must stay at or below 1; with
                 1,000 white-box gradient canaries too (leakguard.dpaudit.gradient)
    broken       the same DP config with the noise skipped (LEAKGUARD_BROKEN_DP=skip-noise) while the ledger
                 still claims epsilon 1: the audit must catch it
    power, dp_identity, broken_identity
                 the same three with 200 canary people of 8 images each (privacy.unit=identity), trained
                 twice as long: the audit's power where memorising is easiest
    dp_identity_k8, broken_identity_k8
                 per-person DP that uses all 8 of a sampled person's images (4 people a step on average),
                 claiming epsilon 0.5: a claim below what the power run shows a run without DP leaks
                 (1.14), so a broken run that behaves like one can be caught by its epsilon

    python tools/dp_audit_example.py                     # about 65 minutes on 2 CPU cores
    python tools/dp_audit_example.py --kimg 10 --out runs/dp_audit_example

Each is `leakguard dp-audit` in a process of its own (the broken switch is read at start); OUT/summary.md
gets the table docs/dp_audit.md shows.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = ["data.synthfaces.num_identities=100", "data.synthfaces.images_per_identity=2"]   # 200 base images
DP = ["privacy.target_epsilon=1", "privacy.expected_batch=16", "privacy.delta=1e-5"]
PER_IMAGE = ["privacy.unit=image", "model.mbstd_channels=0"]
PERSON = ["--unit", "identity", "--canary-images", "8"]
BROKEN = {"LEAKGUARD_BROKEN_DP": "skip-noise"}
WHITE = ["--gradient-canaries", "1000"]
LOOSE = ["privacy.max_grad_norm=1000"]
HALF = ["privacy.target_epsilon=0.5", "privacy.expected_batch=4", "privacy.delta=1e-5"]
ALL8 = ["privacy.max_images_per_identity=8", "model.mbstd_group=4"]   # the power run's D: groups of 4
# name: (preset, dp-audit flags, environment, overrides, kimg multiplier)
ARMS = {"nonprivate": ("configs/synthfaces32.yaml", ["--unit", "image"], {}, [], 1.0),
        # with 1,000 white-box gradient canaries as well (Dirac gradients in D's private step)
        "dp": ("configs/synthfaces32-dp-scratch.yaml", WHITE, {}, DP + PER_IMAGE, 1.0),
        "broken": ("configs/synthfaces32-dp-scratch.yaml", WHITE, BROKEN, DP + PER_IMAGE, 1.0),
        # people as canaries, each with 8 images, trained twice as long: the power the issue asks for, and the
        # same canaries under identity-level DP, correct and broken
        "power": ("configs/synthfaces32.yaml", PERSON, {}, [], 2.0),
        # clipping loose (C = 1000, above D's per-person gradient norms): the noise is all that protects, which
        # is what a missing noise call removes (with C = 1 clipping alone kept D from learning the canaries)
        "dp_identity": ("configs/synthfaces32-dp-scratch.yaml", PERSON[2:] + WHITE, {}, DP + LOOSE, 2.0),
        "broken_identity": ("configs/synthfaces32-dp-scratch.yaml", PERSON[2:] + WHITE, BROKEN, DP + LOOSE, 2.0),
        # every image of a sampled person in its step, as the power run's D sees them, and a claim of 0.5
        "dp_identity_k8": ("configs/synthfaces32-dp-scratch.yaml", PERSON[2:], {}, HALF + LOOSE + ALL8, 2.0),
        "broken_identity_k8": ("configs/synthfaces32-dp-scratch.yaml", PERSON[2:], BROKEN, HALF + LOOSE + ALL8, 2.0)}


def run_arm(name: str, out: Path, kimg: float, canaries: int) -> dict:
    config, flags, env, extra, longer = ARMS[name]
    folder = out / name
    if not (folder / "report.json").is_file():
        kimg = kimg * longer
        overrides = [*BASE, f"train.kimg={kimg}", f"train.snapshot_kimg={kimg}", "train.progress=false", *extra]
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
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))  # the example's default: all four
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "dp_audit_example")
    args = ap.parse_args(argv)
    reports = {name: run_arm(name, args.out, args.kimg, args.canaries) for name in args.arms}
    text = table(reports)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
