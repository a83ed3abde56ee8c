"""Fake sweep trial folders for the leakguard.sweep tests: trial.json as the runner writes it, eval.jsonl
lines as training.evaluate writes them, stats.jsonl, and release.pt through the project's own writer."""
import json
from pathlib import Path

import numpy as np

from training.checkpoint import save_networks

EXTRACTOR = "fd_synthfaces"
FAILED_ERROR = "ValueError: <b>NaN</b> in D's loss & the run stopped"
# group -> (overrides, seeds, epsilon or None without DP, leak at FMR 0.001, AUC, FD), the means the seeds
# scatter around; "noise-0.5" is worse than "noise-0.8" on every axis, so on no front
GROUPS = {
    "unit-identity_noise-0.8": ({"privacy.unit": "identity", "privacy.noise_multiplier": 0.8}, 3, 2.0, 0.05, 0.55, 40),
    "unit-none_noise-0.0": ({"privacy.unit": "none", "privacy.noise_multiplier": 0.0}, 3, None, 0.10, 0.62, 30),
    "unit-identity_noise-2.0": ({"privacy.unit": "identity", "privacy.noise_multiplier": 2.0}, 1, 0.5, 0.02, 0.51, 60),
    "unit-identity_noise-0.5": ({"privacy.unit": "identity", "privacy.noise_multiplier": 0.5}, 1, 3.0, 0.08, 0.60, 50),
}


def eval_line(nimg: int, leak: float, auc: float, fd: float, epsilon: float | None) -> dict:
    """One eval.jsonl line as training.evaluate writes it: matcher synth at two FMRs, one extractor."""
    leakage = [{"fmr": fmr, "threshold": 0.6 + fmr, "threshold_source": "calibration file synth.json",
                "leak_rate": rate, "leak_rate_ci": [rate * 0.8, rate * 1.25], "chance_rate": fmr * 9,
                "ratio": rate / (fmr * 9), "supported": True} for fmr, rate in ((0.01, 8 * leak), (0.001, leak))]
    line = {"nimg": nimg, "kimg": nimg / 1000, "num_fakes": 200, "seeds": "0-199",
            "audit": {"synth": {"version": "synth-abc-none", "leakage": leakage,
                                "membership": {"auc": auc, "auc_ci": [auc - 0.07, auc + 0.06],
                                               "overrepresented": {"identities": [0], "auc": min(auc + 0.2, 1.0),
                                                                   "auc_ci": [auc, 1.0]}}}},
            "fidelity": {EXTRACTOR: {EXTRACTOR: fd, f"{EXTRACTOR}_kid": fd / 50, f"{EXTRACTOR}_kid_std": fd / 4000,
                                     f"{EXTRACTOR}_precision": 0.9 - fd / 100, f"{EXTRACTOR}_recall": 0.2 + fd / 200,
                                     "extractor": "synthfaces", "extractor_version": "synthfaces-1",
                                     "real_count": 400, "fake_count": 200}}, "would_drop": 0}
    if epsilon is not None:
        line["privacy"] = {"epsilon": epsilon * 0.9, "delta": 1e-5, "note": "outside the guarantee"}
    return line


def dp_record(epsilon: float) -> dict:
    return {"unit": "identity", "epsilon": epsilon, "delta": 1e-5, "accountant": "rdp", "sigma": 1.1,
            "q": 0.08, "steps": 500, "max_grad_norm": 1.0, "expected_batch": 16, "units": 200,
            "covers": ["G", "G_ema"], "not_covered": ["audit reports"]}


def write_trial(sweep: Path, name: str, group: str, overrides: dict, seed: int, status: str = "done",
                error: str | None = None, evals: tuple = (), timings: tuple = (), record: dict | None = None):
    folder = sweep / "trials" / name
    folder.mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps(
        {"name": name, "group": group, "overrides": overrides, "seed": seed, "kimg": 2.0, "status": status,
         "error": error, "started": None, "finished": None, "resumed_from": None, "executor": "local",
         "job_id": None}))
    if evals:
        (folder / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
        (folder / "stats.jsonl").write_text("".join(json.dumps({"nimg": 500 * (i + 1), "Timing/sec_per_kimg": t})
                                                    + "\n" for i, t in enumerate(timings)))
    if record is not None:  # the project's own writer, as training.loop.save_release calls it
        save_networks(folder / "release.pt", {}, extra={"privacy": record, "nimg": 2000})
    return folder


def build_sweep(root: Path) -> Path:
    """Four groups (3, 3, 1 and 1 seeds; one without DP), a failed trial and a pending one."""
    rng = np.random.default_rng(0)

    def jitter(x: float) -> float:  # one seed's value around its group's mean
        return float(x * rng.uniform(0.85, 1.15))

    for group, (overrides, seeds, eps, leak, auc, fd) in GROUPS.items():
        for seed in range(seeds):
            final = eval_line(2000, jitter(leak), jitter(auc), jitter(fd), eps)
            earlier = eval_line(1000, 0.3, 0.7, 90.0, eps)
            # the final line first in one trial: rows read the largest nimg, not the last line
            evals = (final, earlier) if seed == 1 else (earlier, final)
            write_trial(root, f"{group}_s{seed}", group, overrides, seed, evals=evals,
                        timings=tuple(rng.uniform(5, 9, 4)), record=None if eps is None else dp_record(eps))
    write_trial(root, "unit-identity_noise-0.3_s0", "unit-identity_noise-0.3", {"privacy.unit": "identity"}, 0,
                status="failed", error=FAILED_ERROR)
    write_trial(root, "unit-identity_noise-0.3_s1", "unit-identity_noise-0.3", {"privacy.unit": "identity"}, 1,
                status="pending")
    return root
