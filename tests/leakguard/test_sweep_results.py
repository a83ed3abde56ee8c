"""leakguard.sweep: a sweep's rows against the trials' own files, results.csv against results.json, group
means against scipy, the Pareto front against a brute-force domination check, and report.html (its
contents, and its plots drawn in headless chromium)."""
import csv
import json
import math
import re
import shutil
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from leakguard.privacy.record import read_privacy_record
from leakguard.sweep.pareto import fronts, pareto_front, privacy_axes
from leakguard.sweep.report import write_report
from leakguard.sweep.results import group_rows, read_rows, trial_row, unrecorded, write_results
from tests.chromium import chromium, coloured_pixels, screenshot, without_images
from tests.leakguard.sweep_trials import EXTRACTOR, FAILED_ERROR, GROUPS, build_sweep, write_trial


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return build_sweep(tmp_path_factory.mktemp("sweep"))


def final_line(folder: Path) -> dict:
    lines = [json.loads(s) for s in (folder / "eval.jsonl").read_text().splitlines()]
    return max(lines, key=lambda e: e["nimg"])


def test_rows_equal_the_final_evaluation_and_the_privacy_record(sweep):
    rows = read_rows(sweep)
    assert [r["trial"] for r in rows] == sorted(p.name for p in (sweep / "trials").iterdir())
    for row in (r for r in rows if r["status"] == "done"):
        folder = sweep / "trials" / row["trial"]
        e = final_line(folder)
        assert row["kimg"] == e["nimg"] / 1000 == 2.0
        for r in e["audit"]["synth"]["leakage"]:
            col = f"leak@synth@{r['fmr']:g}"
            assert row["metrics"][col] == r["leak_rate"] and row["intervals"][col] == r["leak_rate_ci"]
        ms = e["audit"]["synth"]["membership"]
        assert row["metrics"]["auc@synth"] == ms["auc"] and row["intervals"]["auc@synth"] == ms["auc_ci"]
        over = ms["overrepresented"]
        assert (row["metrics"]["auc_overrep@synth"], row["intervals"]["auc_overrep@synth"]) == (over["auc"],
                                                                                                over["auc_ci"])
        f = e["fidelity"][EXTRACTOR]
        for kind, key in (("fd", ""), ("kid", "_kid"), ("kid_std", "_kid_std"), ("precision", "_precision"),
                          ("recall", "_recall")):
            assert row["metrics"][f"{kind}@{EXTRACTOR}"] == f[EXTRACTOR + key]
        assert row["extractors"] == {EXTRACTOR: "synthfaces"}
        assert set(row["metrics"]) >= {"leak@synth@0.01", "leak@synth@0.001"}
        timings = [json.loads(s)["Timing/sec_per_kimg"] for s in (folder / "stats.jsonl").read_text().splitlines()]
        assert row["sec_per_kimg"] == statistics.median(timings) and row["kimg_trained"] == 2.0
        if (folder / "release.pt").is_file():
            record = read_privacy_record(folder / "release.pt")
            assert (row["private"], row["epsilon"], row["delta"], row["privacy_unit"]) == (
                True, record["epsilon"], record["delta"], record["unit"])
            assert "outside any DP guarantee" in row["note"]
        else:
            assert row["private"] is False and row["epsilon"] == math.inf and row["delta"] is None


def test_unfinished_trials_have_status_and_error_and_no_metrics(sweep):
    rows = {r["trial"]: r for r in read_rows(sweep)}
    failed, pending = rows["unit-identity_noise-0.3_s0"], rows["unit-identity_noise-0.3_s1"]
    assert (failed["status"], failed["error"], pending["status"], pending["error"]) == (
        "failed", FAILED_ERROR, "pending", None)
    for r in (failed, pending):
        assert r["metrics"] == r["intervals"] == {} and r["epsilon"] is None and r["kimg"] is None
    assert "unit-identity_noise-0.3" not in {g["group"] for g in group_rows(list(rows.values()))}


def test_an_interrupted_trial_is_unfinished_and_a_folder_without_trial_json_is_listed(tmp_path):
    write_trial(tmp_path, "a_s0", "a", {"x": 1}, 0, status="interrupted", error="stopped: SIGTERM; resumable")
    (tmp_path / "trials" / "stray").mkdir()
    (row,) = read_rows(tmp_path)
    assert (row["trial"], row["status"], row["metrics"], row["epsilon"]) == ("a_s0", "interrupted", {}, None)
    assert group_rows([row]) == [] and unrecorded(tmp_path) == [tmp_path / "trials" / "stray"]
    page = write_report(tmp_path, [row], []).read_text()
    assert "1 trials: 1 interrupted" in page and "stopped: SIGTERM; resumable" in page


def test_a_trial_marked_running_whose_process_is_gone_shows_as_interrupted_in_the_table(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_trial(tmp_path, "a_s0", "a", {"x": 1}, 0, status="running")
    path = tmp_path / "trials" / "a_s0" / "trial.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": int(dead.stdout), "host": socket.gethostname()}))
    (row,) = read_rows(tmp_path)
    assert row["status"] == "interrupted"
    path.write_text(json.dumps({**json.loads(path.read_text()), "host": "another-node"}))
    assert read_rows(tmp_path)[0]["status"] == "running"   # on another host it cannot be told: as recorded


def _refuse(name):
    raise ValueError(f"results.json holds {name}")


def test_csv_and_json_agree_and_the_json_is_strict(sweep, tmp_path):
    rows = read_rows(sweep)
    json_path, csv_path = write_results(rows, tmp_path)
    data = json.loads(json_path.read_text(), parse_constant=_refuse)
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:7] == ["trial", "group", "seed", "status", "error", "privacy.noise_multiplier",
                                  "privacy.unit"]
    assert list(table[0])[7:15] == ["private", "privacy_unit", "epsilon", "delta", "kimg_planned", "kimg",
                                    "kimg_trained", "sec_per_kimg"] and list(table[0])[-1] == "note"
    assert [c for c in table[0] if "@" in c] == [
        "leak@synth@0.01", "leak@synth@0.01_lo", "leak@synth@0.01_hi", "leak@synth@0.001", "leak@synth@0.001_lo",
        "leak@synth@0.001_hi", "auc@synth", "auc@synth_lo", "auc@synth_hi", "auc_overrep@synth",
            "auc_overrep@synth_lo", "auc_overrep@synth_hi", f"fd@{EXTRACTOR}", f"kid@{EXTRACTOR}",
        f"kid_std@{EXTRACTOR}", f"precision@{EXTRACTOR}", f"recall@{EXTRACTOR}", f"extractor@{EXTRACTOR}"]
    assert len(data["trials"]) == len(table) == len(rows) and len(data["groups"]) == len(GROUPS)
    for t, c in zip(data["trials"], table):
        assert (c["trial"], c["group"], int(c["seed"]), c["status"], c["error"] or None) == (
            t["trial"], t["group"], t["seed"], t["status"], t["error"])
        assert all(c[k] == str(v) for k, v in t["overrides"].items() if isinstance(v, str))
        assert all(float(c[k]) == v for k, v in t["overrides"].items() if not isinstance(v, str))
        if t["status"] != "done":
            assert c["epsilon"] == "" and t["epsilon"] is None and not t["metrics"]
            continue
        # a non-private trial's epsilon is infinite: "inf" in the CSV, null (with private false) in the JSON
        assert (c["epsilon"] == "inf") == (t["epsilon"] is None) == (t["private"] is False)
        assert t["epsilon"] is None or float(c["epsilon"]) == t["epsilon"]
        for col, v in t["metrics"].items():
            assert float(c[col]) == v
        for col, (lo, hi) in t["intervals"].items():
            assert (float(c[f"{col}_lo"]), float(c[f"{col}_hi"])) == (lo, hi)
        assert float(c["sec_per_kimg"]) == t["sec_per_kimg"] and c["note"] == t["note"]


def test_group_means_and_intervals_equal_scipys(sweep):
    rows = read_rows(sweep)
    groups = {g["group"]: g for g in group_rows(rows)}
    g = groups["unit-identity_noise-0.8"]
    seeds = [r for r in rows if r["group"] == g["group"]]
    assert (g["n_seeds"], g["interval"], g["seeds"]) == (3, "t", [0, 1, 2])
    for col in seeds[0]["metrics"]:
        x = np.array([r["metrics"][col] for r in seeds])
        lo, hi = stats.t.interval(0.95, df=2, loc=x.mean(), scale=stats.sem(x))
        assert g["means"][col] == pytest.approx(x.mean(), rel=1e-12)
        assert g["intervals"][col] == pytest.approx([lo, hi], rel=1e-12)
    assert g["means"]["epsilon"] == 2.0 and g["intervals"]["epsilon"] == [2.0, 2.0]  # the same record each seed
    free = groups["unit-none_noise-0.0"]
    assert free["means"]["epsilon"] == math.inf and "epsilon" not in free["intervals"] and not free["private"]
    one = groups["unit-identity_noise-2.0"]
    (trial,) = [r for r in rows if r["group"] == one["group"]]
    assert (one["n_seeds"], one["interval"]) == (1, "trial") and one["means"] == {
        "epsilon": 0.5, "kimg": 2.0, "kimg_trained": 2.0, "sec_per_kimg": trial["sec_per_kimg"], **trial["metrics"]}
    assert one["intervals"] == trial["intervals"] and f"fd@{EXTRACTOR}" not in one["intervals"]


def test_a_group_keeps_only_what_every_seed_reports_and_refuses_seeds_with_other_overrides(sweep):
    seeds = [r for r in read_rows(sweep) if r["group"] == "unit-identity_noise-0.8"]
    seeds[0] = {**seeds[0], "metrics": {k: v for k, v in seeds[0]["metrics"].items() if k != "auc@synth"}}
    (g,) = group_rows(seeds)
    assert g["incomplete"] == ["auc@synth"] and "auc@synth" not in g["means"] and "fd@" + EXTRACTOR in g["means"]
    seeds[1] = {**seeds[1], "overrides": {**seeds[1]["overrides"], "privacy.noise_multiplier": 0.9}}
    with pytest.raises(ValueError, match="unit-identity_noise-0.8_s1.*may differ only in seed"):
        group_rows(seeds)


def brute_force_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The definition, pair by pair: NaN points are off the front and dominate nothing."""
    ok = ~(np.isnan(x) | np.isnan(y))
    out = np.zeros(len(x), bool)
    for i in range(len(x)):
        out[i] = ok[i] and not any(ok[j] and x[j] <= x[i] and y[j] <= y[i] and (x[j] < x[i] or y[j] < y[i])
                                   for j in range(len(x)))
    return out


def test_pareto_front_equals_a_brute_force_check():
    rng = np.random.default_rng(1)
    for trial in range(600):
        n = int(rng.integers(0, 30))
        x, y = rng.integers(0, 5, n).astype(float), rng.integers(0, 5, n).astype(float)  # many ties
        if trial % 3:
            x[rng.random(n) < 0.2] = math.inf  # non-private groups
            y[rng.random(n) < 0.05] = math.inf
            x[rng.random(n) < 0.1] = math.nan
            y[rng.random(n) < 0.1] = math.nan
        if trial % 7 == 0:
            x, y = rng.normal(size=n), rng.normal(size=n)  # no ties
        assert np.array_equal(pareto_front(x, y), brute_force_front(x, y)), (x, y)
    assert pareto_front([1, 1, 2], [3, 3, 4]).tolist() == [True, True, False]  # equal duplicates both stay
    assert pareto_front([math.inf, math.inf], [2, 1]).tolist() == [False, True]
    assert pareto_front([math.nan, 5], [0, 9]).tolist() == [False, True]
    assert pareto_front([], []).tolist() == []
    with pytest.raises(ValueError, match="same length"):
        pareto_front([1, 2], [1])


def test_the_fronts_of_the_groups(sweep):
    groups = group_rows(read_rows(sweep))
    names = [g["group"] for g in groups]
    front = fronts(groups)
    assert list(front) == privacy_axes([c for g in groups for c in g["means"]]) == [
        "epsilon", "leak@synth@0.01", "leak@synth@0.001", "auc@synth", "auc_overrep@synth"]
    on_eps = {n for n, f in zip(names, front["epsilon"]) if f}
    assert on_eps == {"unit-identity_noise-0.8", "unit-none_noise-0.0", "unit-identity_noise-2.0"}
    assert not any(f[names.index("unit-identity_noise-0.5")] for f in front.values())


@pytest.mark.parametrize("breaks, message", [
    (lambda d: (d / "eval.jsonl").write_text(
        (d / "eval.jsonl").read_text().splitlines()[0] + "\n{not json\n"), "eval.jsonl:2: not a JSON line"),
    (lambda d: (d / "stats.jsonl").write_text('{"nimg": 1}\n[1, 2]\n'), "stats.jsonl:2: expected a JSON object"),
    (lambda d: (d / "eval.jsonl").unlink(), "eval.jsonl: missing"),
    (lambda d: (d / "trial.json").write_text('{"name": NaN}'), "trial.json: not strict JSON"),
    (lambda d: (d / "release.pt").unlink(), "release.pt: no privacy record, though .*eval.jsonl:2 has a privacy"),
    (lambda d: (d / "release.pt").write_bytes(b"not a checkpoint"), "release.pt: not a LeakGuard checkpoint"),
])
def test_missing_or_corrupt_files_are_errors_naming_the_file(sweep, tmp_path, breaks, message):
    folder = shutil.copytree(sweep / "trials" / "unit-identity_noise-0.8_s0", tmp_path / "unit-identity_noise-0.8_s0")
    trial_row(folder)  # reads before it is broken
    breaks(folder)
    with pytest.raises(ValueError, match=re.escape(str(folder)) + ".*" + message):
        trial_row(folder)


@pytest.fixture(scope="module")
def report(sweep) -> tuple[Path, str]:
    rows = read_rows(sweep)
    page = write_report(sweep, rows, group_rows(rows), spec_text="grid:\n  privacy.noise_multiplier: [<0.8>, 2.0]")
    return page, page.read_text()


def test_report_has_the_groups_table_and_one_plot_per_privacy_axis(report):
    page, html = report
    assert page.name == "report.html"
    assert html.count("<img") == html.count('src="data:image/png;base64,') == 5  # epsilon, 2 leak rates, 2 AUCs
    for name in GROUPS:
        assert f'<td class="l">{name}</td>' in html
    assert "none (no DP)" in html and "2.000 (identity)" in html and "outside any DP guarantee" in html
    assert "10 trials: 1 pending, 8 done, 1 failed; 4 groups of finished trials" in html
    assert "ValueError: &lt;b&gt;NaN&lt;/b&gt; in D&#x27;s loss &amp; the run stopped" in html and "<b>NaN" not in html
    assert "[&lt;0.8&gt;, 2.0]" in html  # the spec, escaped
    assert "membership AUC, synth (lower is better; 0.5 is chance)" in html
    assert "membership AUC of the over-represented people, synth (lower is better; 0.5 is chance)" in html
    dominated = re.search(r'<tr><td class="l">unit-identity_noise-0.5</td>.*?</tr>', html).group(0)
    on_all = re.search(r'<tr><td class="l">unit-identity_noise-2.0</td>.*?</tr>', html).group(0)
    assert on_all.endswith("<td>ε<br>leak synth@0.01<br>leak synth@0.001<br>AUC synth<br>AUC over-rep. synth</td></tr>")
    assert "★" not in dominated and dominated.endswith("<td>–</td></tr>")


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_the_report_draws_its_plots_in_headless_chromium(report, tmp_path):
    page, html = report
    shown = screenshot(chromium(), page, tmp_path / "report.png", height=3600)
    blank = tmp_path / "no_plots.html"  # the control: the same page without the plots' pixels
    blank.write_text(without_images(html))
    control = screenshot(chromium(), blank, tmp_path / "no_plots.png", height=3600)
    assert shown.shape == control.shape and shown.std() > 10  # a page, not a blank window
    # the control's colour is the privacy box's border; each of the 4 plots adds its red and blue points
    assert coloured_pixels(shown) > coloured_pixels(control) + 4 * 800
