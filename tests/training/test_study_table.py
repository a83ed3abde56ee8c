"""The headline study's table (tools/study_table.py) against the trials' own files: each arm's cell is the mean of
its trials' final eval.jsonl values with scipy's Student-t interval, each trial's row its own line; the
comparisons say 'above' or 'below' only where the intervals are apart; the plots are drawn."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.leakguard.sweep_trials import dp_record, eval_line, write_trial

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.study_table import AUC, FD, LEAK, cell, clipped, fmt, write_study  # noqa: E402

NULL = {"synth_b": {"leak_rate": 0.11, "leak_rate_ci": [0.09, 0.13]},
        "synth": {"leak_rate": 0.14, "leak_rate_ci": [0.12, 0.16]}, "fd": 4.0, "faces": 0.5,
        "faces_ci": [0.47, 0.53]}
# arm -> per-seed (leak under synth_b at FMR 1e-3, FD), epsilon or None
ARMS = {"undefended": ([(0.50, 22.0), (0.22, 27.0), (0.21, 21.0)], None),
        "reg5": ([(0.05, 30.0), (0.06, 31.0), (0.04, 29.0)], None),
        "dp_eps8": ([(0.10, 50.0), (0.12, 52.0)], 8.0),
        "filtered": ([(0.0, 24.0)], None)}


def judged(leak: float, fd: float, eps, share: float = 0.6) -> dict:
    """An eval line with synth_b (the judge) and synth, an over-represented AUC, one extractor."""
    line = eval_line(60000, leak, 0.55, fd, eps)
    synth_b = line["audit"].pop("synth")
    line["audit"]["synth_b"] = synth_b
    line["audit"]["synth"] = json.loads(json.dumps(synth_b))
    line["faces"] = {"manifold": {"fd_synthfaces": {"share": share, "share_ci": [share - 0.05, share + 0.05],
                                                    "count": round(share * 1000),
                                                    "of": 1000, "mostly_not_faces": False}}}
    return line


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    for arm, (seeds, eps) in ARMS.items():
        for seed, (leak, fd) in enumerate(seeds):
            share = 0.05 if arm == "dp_eps8" else 0.6
            write_trial(out, f"{arm}_s{seed}", arm, {"arm": arm}, seed, evals=(judged(leak, fd, eps, share),),
                        timings=(10.0, 12.0), record=None if eps is None else dp_record(eps))
    path = write_study(out, NULL, {**dict.fromkeys(ARMS, 3), "undefended": 5}, "the note")  # 5 planned: arm_seeds
    return out, path.read_text()


def row_of(text: str, arm: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith((f"| {arm} |", f"| {arm} (not faces) |")))
    return [c.strip() for c in line.strip("|").split("|")]


def finals(out: Path, arm: str) -> list[dict]:
    return [json.loads((p / "eval.jsonl").read_text()) for p in sorted((out / "trials").glob(f"{arm}_s*"))]


@pytest.mark.parametrize("arm", list(ARMS))
def test_each_cell_is_the_mean_of_its_trials_with_the_t_interval(study, arm):
    out, text = study
    cells = row_of(text, arm)
    lines = finals(out, arm)
    leak = np.array([e["audit"]["synth_b"]["leakage"][1]["leak_rate"] for e in lines])
    fd = np.array([e["fidelity"]["fd_synthfaces"]["fd_synthfaces"] for e in lines])
    assert cells[1] == f"{len(lines)}/{5 if arm == 'undefended' else 3}"
    if len(lines) >= 2:
        def ci(x, top):   # cut to the measure's range: a rate in [0, 1], FD not negative
            half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
            return [max(x.mean() - half, 0.0), min(x.mean() + half, top)]
        assert cells[5] == fmt(float(leak.mean()), ci(leak, 1.0), pct=True)
        assert cells[3] == fmt(float(fd.mean()), ci(fd, np.inf))
    else:   # one seed: the trial's own bootstrap interval
        assert cells[5] == fmt(float(leak[0]), lines[0]["audit"]["synth_b"]["leakage"][1]["leak_rate_ci"], pct=True)
    assert cells[2] == ("8.00" if arm == "dp_eps8" else "∞ (no DP)")
    over = lines[0]["audit"]["synth_b"]["membership"]["overrepresented"]
    if len(lines) == 1:
        assert cells[8] == fmt(over["auc"], over["auc_ci"])


def test_the_null_stands_beside_every_leak_rate(study):
    _, text = study
    null = next(x for x in text.splitlines() if x.startswith("| **null**"))
    assert "11.0% [9.0, 13.0]" in null and "14.0% [12.0, 16.0]" in null and "4.00" in null
    assert "50.0% [47.0, 53.0]" in null


def test_an_arm_draws_no_faces_when_its_share_lies_below_the_nulls(study):
    _, text = study
    # the fixed 50% rule of sweeps would mark every arm here (60% of fakes is above it, the null's 50% is not);
    # the study's rule compares with real faces of new people
    assert text.count("(not faces)") == 1 and "| dp_eps8 (not faces) |" in text
    assert "draws no faces" in next(x for x in text.splitlines() if x.startswith("- **dp_eps8**"))


def test_comparisons_say_apart_only_where_the_intervals_are(study):
    _, text = study
    lines = {m.group(1): m.group(0) for m in re.finditer(r"- \*\*(\w+)\*\* .*", text)}
    # undefended's t interval over 3 scattered seeds reaches below the null's: overlapping, not above
    assert "is overlapping the null's" in lines["undefended"]
    assert "leak synth_b 5.0%" in lines["reg5"] and "is below the null's" in lines["reg5"]
    # against undefended's wide interval ([-10.1, 72.1]) neither reg5's leak rate nor its FD is apart: no claim
    assert "is below the undefended arm's" not in lines["reg5"] and "is above the undefended arm's" not in lines["reg5"]
    assert "FD 30.00 [27.52, 32.48] is overlapping the undefended arm's 23.33 [15.35, 31.32]" in lines["reg5"]
    assert "leak synth_b 0.0% [0.0, 0.0] is below the null's" in lines["filtered"]
    assert "membership AUC 0.55 [0.48, 0.61] covers 0.5 (chance)" in lines["filtered"]   # one seed: its own interval
    assert "membership AUC 0.55 [0.55, 0.55] excludes 0.5" in lines["dp_eps8"]   # every seed 0.55 here


def test_each_trial_has_its_row_and_the_plots_are_drawn(study):
    out, text = study
    for arm, (seeds, _) in ARMS.items():
        for seed, (leak, _) in enumerate(seeds):
            line = next(x for x in text.splitlines() if x.startswith(f"| {arm}_s{seed} |"))
            e = finals(out, arm)[seed]["audit"]["synth_b"]["leakage"][1]
            assert fmt(e["leak_rate"], e["leak_rate_ci"], pct=True) in line
    for name in ("study_leak.png", "study_auc.png", "study_epsilon.png", "study_auc_overrep.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name})" in text
    assert LEAK == "leak@synth_b@0.001" and FD == "fd@fd_synthfaces"


def test_an_interval_past_a_measures_range_is_shown_cut_to_it():
    """Two seeds' t interval of a leak rate can reach below 0 (the study's undefended arm: [-143%, 204%])."""
    assert clipped(LEAK, [-1.43, 2.04]) == [0.0, 1.0] and clipped(AUC, [0.2, 0.9]) == [0.2, 0.9]
    assert clipped(FD, [-11.86, 61.18]) == [0.0, 61.18] and clipped(FD, None) is None
    group = {"means": {LEAK: 0.304}, "intervals": {LEAK: [-1.43, 2.04]}}
    assert cell(group, LEAK, pct=True) == "30.4% [0.0, 100.0]"
