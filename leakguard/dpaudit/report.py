"""report.json and report.html of a one-run privacy audit: per score, the histograms of included and
excluded canaries, the guesses that gave the bound, the epsilon lower bound next to the claimed epsilon,
and the verdict line."""
from pathlib import Path

import numpy as np

from leakguard import run_files
from leakguard.atomic import finite_or_null, write_json, write_text
from leakguard.html import CSS, escape, figure_png, img_tag, new_figure, table_row


def plot_scores(scores: list, included: list, name: str) -> bytes:
    s, inc = np.asarray(scores), np.asarray(included, bool)
    fig, (ax,) = new_figure(6, 3)
    bins = np.linspace(s.min(), s.max() + 1e-9, 25)
    ax.hist(s[inc], bins=bins, alpha=0.6, label=f"included ({int(inc.sum())})", color="tab:red")
    ax.hist(s[~inc], bins=bins, alpha=0.6, label=f"excluded ({int((~inc).sum())})", color="tab:blue")
    ax.set_xlabel(f"score: {name}")
    ax.set_ylabel("canaries")
    ax.legend(fontsize=8)
    return figure_png(fig)


def included_for(report: dict, score: str) -> list:
    """Who was in, for a score: the white-box score has canaries of its own."""
    return report["gradient_canaries"]["included"] if score == "gradient" else report["canaries"]["included"]


def render_html(report: dict) -> str:
    claimed = report["claimed"]
    claim = (f"epsilon {claimed['epsilon']:.3f} at delta {claimed['delta']:g} per {claimed['unit']}" if claimed
             else "none: trained without DP")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>LeakGuard DP audit</title>", f"<style>{CSS}</style></head><body>",
             "<h1>LeakGuard DP audit (one run, Steinke, Nasr &amp; Jagielski 2023)</h1>",
             f"<p>run {escape(report['run'])}; canaries: {escape(report['canaries']['source'])}, "
             f"{sum(report['canaries']['included'])} of {report['canaries']['m']} included; "
             f"claimed: {escape(claim)}</p>"]
    white = report.get("gradient_canaries")
    if white:
        parts.append(f"<p>white-box: {white['m']} Dirac gradient canaries, {sum(white['included'])} included, each "
                     f"sampled at q = {white['q']:.4g} and adding C = {white['C']:g} on its own coordinate of D; the "
                     f"score is the sum over {white['steps']} steps of the released noisy gradient there</p>")
    rows = [table_row(["score", "epsilon lower bound (95%)", "guesses in / out", "correct", "verdict"], header=True)]
    for name, b in report["bounds"].items():
        best = b["best"]
        rows.append(table_row([escape(name), f"{b['epsilon_lower_bound']:.3f}", f"{best['k_plus']} / {best['k_minus']}",
                               f"{best['correct']} of {best['guesses']}", escape(report["verdicts"][name])]))
    parts += ["<h2>Bounds</h2>", "<table>" + "".join(rows) + "</table>",
              f'<p class="note">{escape(next(iter(report["bounds"].values()))["correction"])}</p>']
    for name, scores in report["scores"].items():
        parts += [f"<h2>Scores: {escape(name)}</h2>",
                  img_tag(plot_scores(scores, included_for(report, name), name), f"{name} histograms", "plot")]
        tried = [table_row(["k+", "k-", "guesses", "correct", "bound"], header=True)] + [
            table_row([str(t["k_plus"]), str(t["k_minus"]), str(t["guesses"]), str(t["correct"]),
                       f"{t['epsilon_lower_bound']:.3f}"]) for t in report["bounds"][name]["tried"]]
        parts.append("<table>" + "".join(tried) + "</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(out: Path, report: dict) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / run_files.REPORT_JSON, finite_or_null(report))
    write_text(out / run_files.REPORT_HTML, render_html(report))
    return out / run_files.REPORT_JSON, out / run_files.REPORT_HTML
