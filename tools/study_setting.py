"""The headline study's setting, measured: does the undefended generator leak above the null, over seeds?

    python tools/study_setting.py            # runs configs/sweeps/synthfaces32-leak-setting.yaml, then the null
    python tools/study_setting.py --spec configs/sweeps/synthfaces32-leak-setting-60kimg.yaml   # twice as long

The data, membership sets, matchers and the null are tools/regularizer_experiment.py's (the same people: 0..49
with 10 images, person 0 with 500), so its single-seed result is one of the three seeds here. Writes
runs/sweeps/synthfaces32-leak-setting/ (the sweep's results and report) and its setting.md: per seed the leak
rate under each matcher at FMR 1e-3 with its interval, the mean over seeds with a 95% t interval, person 0's
share of the leaks, membership AUC, FD, and the null (1,000 faces of people never trained on).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from leakguard.sweep.results import t_interval  # noqa: E402
from tools.demo_data import data as demo_data, matcher as demo_matcher  # noqa: E402
from tools.regularizer_experiment import null_rates, sets  # noqa: E402
from training.cli import main  # noqa: E402
from training.synthfaces.feature_net import ensure_synthfaces_features  # noqa: E402

SPEC = REPO / "configs" / "sweeps" / "synthfaces32-leak-setting.yaml"
DATA = REPO / "runs" / "regularizer_experiment"
FMR = 1e-3


def final_line(trial: Path) -> dict:
    return json.loads((trial / "eval.jsonl").read_text().splitlines()[-1])


def table(out: Path, null: dict) -> str:
    trials = sorted((out / "trials").glob("base_s*"))
    lines = ["| seed | matcher | leak @ FMR 1e-3 [95% CI] | membership AUC [95% CI] | FD synthfaces | faces |",
             "|---|---|---|---|---|---|"]
    per = {}
    for trial in trials:
        line = final_line(trial)
        fd = line["fidelity"]["fd_synthfaces"]["fd_synthfaces"]
        share = next(iter(line["faces"]["manifold"].values()))["share"]
        for name, section in line["audit"].items():
            row = next(r for r in section["leakage"] if r["fmr"] == FMR)
            auc = section.get("membership") or {}
            per.setdefault(name, []).append(row["leak_rate"])
            lines.append(f"| {trial.name.split('_s')[-1]} | {name} | {row['leak_rate']:.3f} "
                         f"[{row['leak_rate_ci'][0]:.3f}, {row['leak_rate_ci'][1]:.3f}] | "
                         f"{auc.get('auc', float('nan')):.3f} [{auc.get('auc_ci', [0, 0])[0]:.3f}, "
                         f"{auc.get('auc_ci', [0, 0])[1]:.3f}] | {fd:.2f} | {share:.2f} |")
    lines += ["", "| matcher | mean leak over seeds [95% t interval] | null: new people [95% CI] |", "|---|---|---|"]
    for name, values in per.items():
        m = float(np.mean(values))
        lo, hi = t_interval(np.array(values)) or (m, m)
        n = null.get(name, {})
        ci = n.get("leak_rate_ci", [float("nan")] * 2)
        lines.append(f"| {name} | {m:.3f} [{lo:.3f}, {hi:.3f}] ({len(values)} seeds) | "
                     f"{n.get('leak_rate', float('nan')):.3f} [{ci[0]:.3f}, {ci[1]:.3f}] |")
    return "\n".join(lines) + "\n"


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=Path, default=SPEC, help="a spec of this setting (same people, other kimg)")
    args = p.parse_args(argv)
    out = REPO / "runs" / "sweeps" / args.spec.stem
    demo = demo_data()
    matchers = {name: demo_matcher(name, demo) for name in ("synth_b", "synth")}
    features = ensure_synthfaces_features(None, resolution=32)
    files = sets(DATA / "data")
    evals = [f"eval.matchers=[synth_b={matchers['synth_b']},synth={matchers['synth']}]",
             f"eval.fidelity=[synthfaces={features}]", f"eval.members={files['members']}",
             f"eval.nonmembers={files['nonmembers']}"]
    code = main(["sweep", "run", str(args.spec), "--out", str(out), *evals])
    if code != 0:
        return code
    null = null_rates(DATA, files, matchers)
    text = table(out, null)
    (out / "setting.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run())
