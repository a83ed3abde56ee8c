"""SWEEP/report.html: one self-contained page of a sweep (plain HTML and CSS, plots as base64 PNG):
the trials' status counts, the groups' table (means over seeds with intervals, the groups on each
privacy axis's Pareto front starred), one Pareto plot per privacy axis against FD, the trials that did
not finish with their errors, what the numbers' privacy is, and the sweep's spec. Every string is
passed through html.escape; no training image is read or shown.

Beside the leak rates, the share of fakes that are faces (faces <extractor>, detected <matcher>); a
group whose first extractor's share is below leakguard.audit.faces.MIN_FACE_SHARE carries the mark
NOT_FACES in that cell and in its "non-dominated on" cell, is on no front and is hollow and grey in the
plots: a generator that makes no faces leaks nothing and protects no one.

    write_report("runs/sweeps/dp-ablation", rows, group_rows(rows), spec_text=spec.read_text())
"""
import json
from collections import Counter
from pathlib import Path
from typing import Sequence

from leakguard import run_files
from leakguard.atomic import write_text
from leakguard.audit.faces import MIN_FACE_SHARE
from leakguard.html import CSS, escape, fmt_ci, fmt_num, img_tag, table_row
from leakguard.sweep.pareto import EPSILON, axis_label, fidelity_axis, fronts, group_columns, short_name
from leakguard.sweep.plot import pareto_plot
from leakguard.sweep.trial import STATUSES

STAR = "★"
PRIVACY_STATEMENT = (
    "ε is each private trial's (ε, δ) guarantee for its released networks (release.pt), per privacy unit, as "
    "its privacy record states; a group trained without DP has no guarantee: its ε is infinite, shown as "
    "“none (no DP)” and drawn in the “no DP” band. The leak rates, membership AUCs, FD, KID, precision and "
    "recall are computed from the training images (and the member and non-member sets): they are the data "
    "holder's measurements, outside any DP guarantee, and so are this page, results.json and results.csv.")
FORMATS = {"leak": (None, "leak {}"), "faces": (None, "faces {}"), "detected": (None, "detected {}"),
           "auc": (fmt_num, "AUC {}"), "auc_overrep": (fmt_num, "AUC over-represented {}"),
           "fd": (lambda v: fmt_num(v, 2), "FD {}"),
           "kid": (lambda v: fmt_num(v, 4), "KID {}")}
NOT_FACES = "not faces"


def write_report(sweep_dir, rows: Sequence[dict], groups: Sequence[dict], spec_text: str | None = None) -> Path:
    """Writes SWEEP/report.html atomically and returns its path."""
    sweep_dir = Path(sweep_dir).expanduser()
    return write_text(sweep_dir / run_files.REPORT_HTML, render_report(sweep_dir.name, rows, groups, spec_text))


def _status_line(rows: Sequence[dict]) -> str:
    counts = Counter(r["status"] for r in rows)
    return f"{len(rows)} trials: " + (", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]) or "none")


def _cell(g: dict, col: str, on_front: bool) -> str:
    fmt, _ = FORMATS[col.partition("@")[0]]
    mean, ci = g["means"].get(col), g["intervals"].get(col)
    text = "–" if mean is None else fmt_ci(mean, ci) if fmt is None else fmt_ci(mean, ci, fmt)
    mark = f" <b>{NOT_FACES}</b>" if g.get("not_faces") and col == f"faces@{g.get('face_key')}" else ""
    return escape(text) + (f" {STAR}" if on_front else "") + mark


def _epsilon(g: dict, on_front: bool) -> str:
    eps = g["means"].get(EPSILON)
    text = "none (no DP)" if not g["private"] else f"{fmt_num(eps, 3)} ({g['privacy_unit']})"
    return escape(text) + (f" {STAR}" if on_front else "")


def _groups_table(groups: Sequence[dict], front: dict) -> str:
    if not groups:
        return '<p class="note">No trial has finished.</p>'
    shown = [c for c in group_columns(groups) if c.partition("@")[0] in FORMATS]
    head = ["group", "overrides", "seeds", "interval", "ε", "δ"] + [
        escape(FORMATS[c.partition("@")[0]][1].format(c.partition("@")[2])) for c in shown] + ["sec/kimg",
                                                                                               "non-dominated on"]
    rows = ['<table class="groups">', table_row(head, header=True, left=2)]
    for i, g in enumerate(groups):
        star = {axis: bool(f[i]) for axis, f in front.items()}
        overrides = "<br>".join(escape(f"{k}={v if isinstance(v, str) else json.dumps(v)}")
                                for k, v in g["overrides"].items()) or "–"
        seeds = f"{g['n_seeds']} ({', '.join(map(str, g['seeds']))})"
        interval = f"t, {g['n_seeds']} seeds" if g["interval"] == "t" else "trial's own"
        delta = "–" if g["delta"] is None else format(g["delta"], "g")
        on = "<br>".join(escape(short_name(a)) for a, s in star.items() if s) or "–"
        if g.get("not_faces"):
            on = f"– ({NOT_FACES})"
        rows.append(table_row([escape(g["group"]), overrides, escape(seeds), escape(interval),
                               _epsilon(g, star.get(EPSILON, False)), escape(delta)]
                              + [_cell(g, c, star.get(c, False)) for c in shown]
                              + [escape(fmt_num(g["means"].get("sec_per_kimg"), 1)), on], left=2))
    rows.append("</table>")
    return "\n".join(rows)


def _notes(groups: Sequence[dict]) -> str:
    notes = [f"{STAR}: on that privacy axis's Pareto front against FD (no other group is at least as good on "
             "both and better on one; lower is better on every axis).",
             "Intervals: with 2 or more seeds, the 95% Student-t interval of the mean over seeds; with 1 seed, "
             "the trial's own 95% interval from its evaluation (leak rates, AUC and shares of faces only)."]
    notes += [f"Group {g['group']}: {', '.join(g['incomplete'])} not reported by every seed, so left out of its "
              "means." for g in groups if g["incomplete"]]
    if any(c.startswith(("faces@", "detected@")) for c in group_columns(groups)):
        notes.append("faces <extractor>: the share of fakes inside the training images' k-NN manifold in that "
                     "extractor's features (the precision's balls); detected <matcher>: the share in which its face "
                     f"detector finds a face. {NOT_FACES}: the first extractor's share is below "
                     f"{MIN_FACE_SHARE:.0%}: the fakes are mostly not faces, so their low leak rates are no privacy; "
                     "such a group is on no Pareto front and hollow and grey in the plots.")
    return "".join(f'<p class="note">{escape(n)}</p>' for n in notes)


def _plots(groups: Sequence[dict], front: dict) -> str:
    fid = fidelity_axis(group_columns(groups))
    if fid is None:
        return '<p class="note">No finished group has an FD: there is no fidelity axis to plot against.</p>'
    return "\n".join(f"<h3>{escape(axis_label(axis))}</h3>"
                     + img_tag(pareto_plot(groups, axis, fid, f), f"Pareto plot: {axis} against {fid}", "plot")
                     for axis, f in front.items())


def _unfinished(rows: Sequence[dict]) -> str:
    rest = sorted((r for r in rows if r["status"] != "done"), key=lambda r: (r["status"] != "failed", r["trial"]))
    if not rest:
        return '<p class="note">Every trial finished.</p>'
    body = [table_row([escape(r["trial"]), escape(r["status"]),
                       f'<pre class="err">{escape(r["error"] or "–")}</pre>'], left=3) for r in rest]
    return "<table>" + table_row(["trial", "status", "error"], header=True, left=3) + "".join(body) + "</table>"


def render_report(title: str, rows: Sequence[dict], groups: Sequence[dict], spec_text: str | None) -> str:
    front = fronts(groups)
    spec = f"<pre>{escape(spec_text)}</pre>" if spec_text else '<p class="note">no spec given</p>'
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}: sweep</title>
<style>{CSS}
pre {{ background: #f6f6f6; padding: 8px; font-size: 12px; white-space: pre-wrap; }}
pre.err {{ margin: 0; background: none; padding: 0; text-align: left; }}
table.groups td {{ white-space: nowrap; }}</style></head><body>
<h1>Sweep {escape(title)}</h1>
<p class="meta">{escape(_status_line(rows))}; {len(groups)} groups of finished trials.</p>
<div class="warn"><b>Privacy:</b> {escape(PRIVACY_STATEMENT)}</div>
<h2>Groups</h2><div class="wide">{_groups_table(groups, front)}</div>{_notes(groups)}
<h2>Privacy against fidelity</h2>{_plots(groups, front) if groups else '<p class="note">nothing to plot</p>'}
<h2>Trials that did not finish</h2>{_unfinished(rows)}
<h2>Spec</h2>{spec}
</body></html>"""
