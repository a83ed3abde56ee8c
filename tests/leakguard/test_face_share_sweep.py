"""The sweep's table, CSV, report and Pareto plots with the share of fakes that are faces (issue 28, item 6):
a trial whose eval.jsonl says its fakes are mostly not faces is marked "not faces", is on no front though
its leak rate is the lowest, and is drawn hollow and grey with a legend entry."""
import csv
import json
import re

import numpy as np
import pytest

from leakguard.audit.faces import MIN_FACE_SHARE
from leakguard.sweep import plot
from leakguard.sweep.pareto import fronts
from leakguard.sweep.report import write_report
from leakguard.sweep.results import group_rows, read_rows, write_results
from tests.leakguard.sweep_trials import EXTRACTOR, dp_record, eval_line, write_trial

# group -> (epsilon, leak at FMR 0.001, FD, share of faces under the extractor, under dlib's detector)
GROUPS = {"noise": (1.0, 0.0, 80.0, 0.1, 0.0),          # a DP generator of coloured noise: leaks nothing
          "faces-a": (2.0, 0.04, 30.0, 0.9, 0.85),
          "faces-b": (4.0, 0.08, 20.0, 0.95, 0.9)}


def faces_line(nimg: int, leak: float, fd: float, epsilon: float, share: float, detected: float) -> dict:
    """eval_line with a "faces" key as training.evaluate writes it (200 fakes)."""
    line = eval_line(nimg, leak, 0.55, fd, epsilon)

    def entry(s: float, rule: str) -> dict:
        count = round(200 * s)
        rows = [{"fmr": r["fmr"], "threshold": r["threshold"], "supported": True, "leaking_samples": 0,
                 "leak_rate": 0.0 if count else None, "leak_rate_ci": [0.0, 0.0] if count else None}
                for r in line["audit"]["synth"]["leakage"]]
        return {"rule": rule, "count": count, "of": 200, "share": count / 200, "share_ci": [s * 0.8, min(1.0, s + 0.05)],
                "mostly_not_faces": s < MIN_FACE_SHARE, "leakage": {"synth": rows}}
    line["faces"] = {"manifold": {EXTRACTOR: {**entry(share, "k-NN manifold"), "k": 3}},
                     "detector": {"dlib": entry(detected, "dlib's detector")}}
    return line


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces_sweep")
    for group, (eps, leak, fd, share, detected) in GROUPS.items():
        write_trial(root, f"{group}_s0", group, {"privacy.noise_multiplier": eps}, 0,
                    evals=(faces_line(2000, leak, fd, eps, share, detected),), timings=(5.0,), record=dp_record(eps))
    return root


def test_rows_carry_the_face_share_and_the_not_faces_mark(sweep, tmp_path):
    rows = {r["group"]: r for r in read_rows(sweep)}
    assert (rows["noise"]["face_key"], rows["noise"]["face_share"], rows["noise"]["not_faces"]) == (EXTRACTOR, 0.1,
                                                                                                  True)
    assert rows["faces-a"]["not_faces"] is False and rows["faces-a"]["metrics"][f"faces@{EXTRACTOR}"] == 0.9
    assert rows["faces-a"]["metrics"]["detected@dlib"] == 0.85
    assert rows["faces-a"]["intervals"][f"faces@{EXTRACTOR}"] == [0.9 * 0.8, min(1.0, 0.9 + 0.05)]
    _, csv_path = write_results(list(rows.values()), tmp_path)
    with open(csv_path, newline="") as f:
        table = {r["group"]: r for r in csv.DictReader(f)}
    header = list(next(iter(table.values())))
    assert header[header.index("sec_per_kimg") + 1:][:3] == ["face_key", "face_share", "not_faces"]
    at = [c for c in header if "@" in c]   # the shares right after the leak rates, with their intervals
    assert at[at.index("leak@synth@0.001_hi") + 1:][:6] == [
        f"faces@{EXTRACTOR}", f"faces@{EXTRACTOR}_lo", f"faces@{EXTRACTOR}_hi", "detected@dlib", "detected@dlib_lo",
        "detected@dlib_hi"]
    assert (table["noise"]["face_share"], table["noise"]["not_faces"], table["faces-b"]["not_faces"]) == (
        "0.1", "true", "false")


def test_a_group_that_is_not_faces_is_on_no_front(sweep):
    groups = group_rows(read_rows(sweep))
    names = [g["group"] for g in groups]
    assert [g["not_faces"] for g in groups] == [False, False, True] and names[2] == "noise"
    front = fronts(groups)
    # noise has the lowest epsilon and leak rate: without the mark it would be on both fronts
    assert not any(f[2] for f in front.values())
    assert front["epsilon"].tolist() == [True, True, False] and front["leak@synth@0.001"].tolist() == [True, True,
                                                                                                       False]


def test_the_report_shows_the_share_beside_the_leak_rates_and_marks_the_noise(sweep):
    rows = read_rows(sweep)
    html = write_report(sweep, rows, group_rows(rows)).read_text()
    heads = re.findall(r"<th(?: class=\"l\")?>(.*?)</th>", html)
    i = heads.index("leak synth@0.001")
    assert heads[i + 1:i + 3] == [f"faces {EXTRACTOR}", "detected dlib"]
    noise = re.search(r'<tr><td class="l">noise</td>.*?</tr>', html).group(0)
    assert "10.00% [8.00%, 15.00%] <b>not faces</b>" in noise and noise.endswith("<td>– (not faces)</td></tr>")
    faces_a = re.search(r'<tr><td class="l">faces-a</td>.*?</tr>', html).group(0)
    assert "90.00% [72.00%, 95.00%]</td>" in faces_a and "not faces" not in faces_a
    assert "the fakes are mostly not faces" in html and f"below {MIN_FACE_SHARE:.0%}" in html


def test_the_plots_draw_the_noise_hollow_and_grey_with_a_legend_entry(sweep, monkeypatch):
    groups = group_rows(read_rows(sweep))
    monkeypatch.setattr(plot, "figure_png", lambda fig: fig)   # keep the figure to look at its artists
    fig = plot.pareto_plot(groups, "leak@synth@0.001", f"fd@{EXTRACTOR}", fronts(groups)["leak@synth@0.001"])
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert plot.NOT_FACES in legend and "50%" in plot.NOT_FACES
    (hollow,) = [c for c in ax.collections if c.get_label() == plot.NOT_FACES]
    assert hollow.get_offsets().tolist() == [[0.0, 80.0]]      # the noise group at (leak 0, FD 80)
    assert len(hollow.get_facecolors()) == 0 and np.allclose(hollow.get_edgecolors()[0][:3], 0.45)
    red = [c for c in ax.collections if c.get_label() == "non-dominated"][0]
    assert sorted(red.get_offsets().tolist()) == [[0.04, 30.0], [0.08, 20.0]]


def test_an_eval_line_with_a_broken_faces_entry_is_an_error_naming_the_file(tmp_path):
    line = faces_line(2000, 0.1, 30.0, 1.0, 0.5, 0.5)
    del line["faces"]["manifold"][EXTRACTOR]["share"]
    folder = write_trial(tmp_path, "a_s0", "a", {"x": 1}, 0, evals=(line,), timings=(5.0,), record=dp_record(1.0))
    with pytest.raises(ValueError, match=re.escape(str(folder / "eval.jsonl")) + ":1: not an evaluation record "
                                         "\\(KeyError: 'share'\\)"):
        read_rows(tmp_path)
    assert json.loads((folder / "eval.jsonl").read_text())["faces"]
