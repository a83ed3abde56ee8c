"""An audit's report.json and report.html, written into one folder from the report dict that
leakguard.audit.audit.run_audit returns (numbers) and the leaking pairs' pixels (not in the JSON).

    json_path, html_path = write_report("runs/audit", report, images={"synth": {"leak_pairs": pairs}})

report.html is one self-contained file: plain HTML and CSS, no JavaScript, no external resources;
every plot and face is a base64 PNG data URI. Escaping, CSS, number formats and figures come from
the shared page toolkit, leakguard.html (plots on matplotlib `Figure` objects: Agg, no pyplot, no window).
Training faces are private data: unless `show_training_images`, they are never encoded into the
file; a grey box stands in their place. Every string from the report is passed through html.escape.
report.json is strict JSON: a number that is NaN or infinite (a leak ratio whose chance rate is 0)
is written as null, and the HTML, drawn from the report itself, says which it was. When the report
says which generated images are faces (report["faces"]), the page shows it right below the summary
(leakguard.audit.faces_page), with a warning when most of them are not.

Formats, the same in every table (leakguard.html's): rates in percent (two decimals, more below 0.1%
so three significant digits show; an interval shares the decimals of its smallest value), intervals
as "estimate [low, high]", AUC and scores with three decimals, thresholds with four, FMRs as %g.
"""
from pathlib import Path
from typing import Optional

import numpy as np

from leakguard import run_files
from leakguard.atomic import finite_or_null, write_json, write_text
from leakguard.audit.faces_page import faces_html
from leakguard.html import (CSS, ci_html, escape, figure_png, fmt_ci, fmt_fmr, fmt_num, fmt_pct, img_tag,
                            mpl_literal, new_figure, nonfinite_text, png_bytes, table_row)

HIDDEN_TEXT = "training image hidden (--show-training-images)"
MISSING_TEXT = "training image not available"
LEVEL = 0.95                 # interval coverage, unless report["settings"]["level"] says otherwise


def write_report(out_dir, report: dict, images: Optional[dict] = None,
                 show_training_images: bool = False) -> tuple[Path, Path]:
    """Writes out_dir/report.json and out_dir/report.html (each atomically); returns both paths.
    images: {matcher name: {"leak_pairs": [(generated [H, W, 3] uint8, training [H, W, 3] uint8 or
    None), ...]}} in the order of report["matchers"][name]["top_pairs"]."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / run_files.REPORT_JSON, out / run_files.REPORT_HTML
    # The numbers first: they survive a missing matplotlib or a failing plot.
    write_json(json_path, finite_or_null(report))  # a non-finite number (a leak ratio at chance 0) is null
    write_text(html_path, render_html(report, images, show_training_images))
    return json_path, html_path


# ---- numbers -------------------------------------------------------------------------------------

def fmt_ratio(x) -> str:
    """leak / chance: '12.5', '3.21', '∞' (chance 0), 'n/a' (both 0)."""
    return nonfinite_text(x) or (f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}")


# ---- plots ---------------------------------------------------------------------------------------

THRESHOLD_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))


def _density(counts, edges: np.ndarray) -> Optional[np.ndarray]:
    c = np.asarray(counts if counts is not None else [], np.float64)
    if len(c) != len(edges) - 1 or c.sum() <= 0:
        return None
    return c / (c.sum() * np.diff(edges))


def plot_histograms(m: dict) -> Optional[bytes]:
    """R-R genuine, R-R impostor and R-G best scores as densities over the shared bins, with the
    threshold at each FMR; linear and log density side by side (the log shows the impostor tail,
    where the thresholds of small FMRs lie)."""
    edges = np.asarray(m.get("hist_edges") or [], np.float64)       # [B + 1]
    if len(edges) < 2:
        return None
    rr, rg = m.get("rr") or {}, m.get("rg") or {}
    curves = [("R-R genuine pairs", (rr.get("genuine") or {}).get("histogram"), "tab:green"),
              ("R-R impostor pairs", (rr.get("impostor") or {}).get("histogram"), "tab:blue"),
              ("R-G: each generated face's best score", rg.get("best_scores_histogram"), "tab:red")]
    curves = [(label, _density(c, edges), color) for label, c, color in curves]
    curves = [c for c in curves if c[1] is not None]
    if not curves:
        return None
    points = [p for p in m.get("leakage") or [] if nonfinite_text(p.get("threshold")) is None]
    lo, hi = _x_range(edges, [d for _, d, _ in curves], [p["threshold"] for p in points])
    fig, axes = new_figure(11, 3.6, 2)
    for ax, log in zip(axes, (False, True)):
        for label, d, color in curves:
            ax.stairs(d, edges, label=label, color=color, linewidth=1.4)
        for i, p in enumerate(points):
            ax.axvline(p["threshold"], color="black", linewidth=1, linestyle=THRESHOLD_STYLES[i % 4],
                       label=f"t at FMR {fmt_fmr(p.get('fmr'))} = {p['threshold']:.3f}")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("cosine score")
        ax.set_ylabel("density" + (" (log)" if log else ""))
        if log:
            ax.set_yscale("log")
            ax.set_ylim(bottom=min(d[d > 0].min() for _, d, _ in curves) / 2)
    axes[0].set_title("score densities")
    axes[1].set_title("score densities, log scale")
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    rows = [(handles[:len(curves)], labels[:len(curves)]), (handles[len(curves):], labels[len(curves):])]
    for r, (h, l) in enumerate(row for row in rows if row[0]):
        fig.legend(h, l, loc="upper center", bbox_to_anchor=(0.5, -0.07 * r), ncol=len(h), frameon=False)
    return figure_png(fig)


def _x_range(edges: np.ndarray, densities: list, thresholds: list) -> tuple[float, float]:
    """The score range where any density is nonzero or a threshold lies, two bins of margin."""
    used = np.flatnonzero(np.any(np.stack(densities) > 0, axis=0))
    lo, hi = edges[used[0]], edges[used[-1] + 1]
    lo, hi = min([lo, *thresholds]), max([hi, *thresholds])
    pad = 2 * (edges[1] - edges[0])
    return max(edges[0], lo - pad), min(edges[-1], hi + pad)


def plot_roc(membership: dict) -> Optional[bytes]:
    """The membership ROC on linear and log FPR axes, with the chance diagonal and TPR at each FPR."""
    roc = membership.get("roc") or {}
    fpr, tpr = np.asarray(roc.get("fpr") or [], np.float64), np.asarray(roc.get("tpr") or [], np.float64)
    if len(fpr) < 2 or len(fpr) != len(tpr):
        return None
    auc = fmt_ci(membership.get("auc"), membership.get("auc_ci"), fmt_num)
    # Log axis: down to half the smallest FPR the non-members can give (1 / nonmembers) or the
    # smallest FPR a TPR is reported at, whichever is lower.
    negatives, positive = membership.get("nonmembers") or 0, fpr[fpr > 0]
    lows = [0.5 / negatives] if negatives else ([positive.min() / 2] if len(positive) else [1e-3])
    lows += [float(k) / 2 for k in membership.get("tpr_at_fpr") or {}]
    left = min(lows)
    fig, axes = new_figure(11, 4.4, 2)
    for ax, log in zip(axes, (False, True)):
        diag = np.logspace(np.log10(left), 0, 200) if log else np.array([0.0, 1.0])
        ax.plot(diag, diag, color="grey", linewidth=1, linestyle="--", label="chance (TPR = FPR)")
        ax.plot(fpr, tpr, color="tab:red", linewidth=1.6, label=f"ROC, AUC {auc}")
        for i, (key, value) in enumerate(sorted((membership.get("tpr_at_fpr") or {}).items(),
                                                key=lambda kv: -float(kv[0]))):
            if nonfinite_text(value) is None:
                ax.plot([float(key)], [value], marker="os^D"[i % 4], color="black", linestyle="none",
                        label=f"TPR at FPR {key} = {fmt_pct(value)}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("FPR (non-members called members)" + (", log scale" if log else ""))
        ax.set_ylabel("TPR (members found)")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(left, 1.05)
        else:
            ax.set_xlim(-0.02, 1.02)
    axes[0].set_title("membership ROC")
    axes[1].set_title("membership ROC, log FPR")
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    return figure_png(fig)


def plot_leak_rates(matchers: dict) -> Optional[bytes]:
    """Leak rate per matcher with its interval, one panel per FMR (each on its own scale), and the
    chance rate: a black line at its lower bound, a grey span up to its upper bound."""
    fmrs = _fmrs(matchers)
    if not fmrs:
        return None
    names = list(matchers)
    short = sum(len(_short(n)) for n in names) <= 16     # fits under the bars unrotated
    fig, axes = new_figure(max(4.0, 3.2 * len(fmrs)), 3.8, len(fmrs))
    colors = [f"C{i % 10}" for i in range(len(names))]
    for ax, fmr in zip(axes, fmrs):
        for i, name in enumerate(names):
            p = next((q for q in (matchers[name] or {}).get("leakage") or [] if q.get("fmr") == fmr), None)
            if p is None or nonfinite_text(p.get("leak_rate")):
                continue
            rate, ci = p["leak_rate"], p.get("leak_rate_ci")
            yerr = [[max(0.0, rate - ci[0])], [max(0.0, ci[1] - rate)]] if ci and len(ci) == 2 else None
            ax.bar(i, rate, width=0.5, color=colors[i], yerr=yerr, capsize=4, zorder=2,
                   hatch=None if p.get("supported", True) else "//", edgecolor="black", linewidth=0.5)
            bounds = p.get("chance_rate_bounds") or [p.get("chance_rate")] * 2
            if nonfinite_text(bounds[0]) is None and nonfinite_text(bounds[1]) is None:
                ax.fill_between([i - 0.4, i + 0.4], bounds[0], bounds[1], color="grey", alpha=0.35, linewidth=0,
                                zorder=1)
            if nonfinite_text(p.get("chance_rate")) is None:
                ax.hlines(p["chance_rate"], i - 0.4, i + 0.4, color="black", linewidth=2, zorder=3)
        ax.set_xticks(range(len(names)), [mpl_literal(_short(n)) for n in names], rotation=0 if short else 30,
                      ha="center" if short else "right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(lambda y, _: f"{100 * y:g}%")
        ax.set_title(f"FMR {fmt_fmr(fmr)}")
    axes[0].set_ylabel("leak rate (generated samples)")
    _chance_legend(fig, any(not p.get("supported", True)
                            for m in matchers.values() for p in (m or {}).get("leakage") or []))
    fig.tight_layout()
    return figure_png(fig)


def _short(name: str, n: int = 24) -> str:
    return name if len(name) <= n else name[:n - 1] + "…"


def _chance_legend(fig, unsupported: bool) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([], [], color="black", linewidth=2, label="chance rate"),
               Patch(color="grey", alpha=0.4, label="chance rate bounds"),
               Line2D([], [], color="black", marker="|", markersize=10, linestyle="none", label="bootstrap interval")]
    if unsupported:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="FMR not supported by data"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), frameon=False)


# ---- HTML ----------------------------------------------------------------------------------------

def render_html(report: dict, images: Optional[dict] = None, show_training_images: bool = False) -> str:
    """The whole report.html as a string (see module doc)."""
    matchers = report.get("matchers") or {}
    level = (report.get("settings") or {}).get("level", LEVEL)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>LeakGuard audit report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>LeakGuard audit report</h1>",
             f'<p class="meta">created {escape(report.get("created", "?"))} · LeakGuard '
             f'{escape(report.get("leakguard_version", "?"))} · report format {escape(report.get("format", "?"))}</p>',
             "<h2>Summary</h2>", _summary_table(matchers, level),
             faces_html(report.get("faces") or {}, matchers, level)]
    bars = plot_leak_rates(matchers) if matchers else None
    if bars:
        parts += ["<h2>Leak rate per matcher</h2>", img_tag(bars, "leak rate per matcher at each FMR", "plot")]
    parts += ["<h2>Inputs</h2>", _inputs_table(report.get("inputs") or {}),
              "<h2>Settings</h2>", _kv_table(report.get("settings") or {})]
    for i, (name, m) in enumerate(matchers.items()):
        pairs = ((images or {}).get(name) or {}).get("leak_pairs") or []
        parts.append(_matcher_section(i, name, m or {}, pairs, show_training_images, level))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _fmrs(matchers: dict) -> list:
    out = []
    for m in matchers.values():
        for p in (m or {}).get("leakage") or []:
            if p.get("fmr") not in out:
                out.append(p.get("fmr"))
    return out


def _tpr_keys(matchers: dict) -> list:
    keys = []
    for m in matchers.values():
        for k in ((m or {}).get("membership") or {}).get("tpr_at_fpr") or {}:
            if k not in keys:
                keys.append(k)
    return sorted(keys, key=lambda k: -float(k))


def _summary_table(matchers: dict, level: float) -> str:
    if not matchers:
        return '<p class="note">No matchers in this report.</p>'
    fmrs, tprs = _fmrs(matchers), _tpr_keys(matchers)
    pct = f"{100 * level:g}%"
    top = ['<th class="l" rowspan="2">matcher</th>']
    top += [f'<th colspan="3">FMR {escape(fmt_fmr(f))}</th>' for f in fmrs]
    top += [f'<th colspan="{1 + len(tprs)}">identity membership</th>']
    ci = f' <span class="ci">[{pct} CI]</span>'
    sub = [f"leak rate{ci}", "chance", "ratio"] * len(fmrs)
    sub += [f"AUC{ci}"] + [f"TPR at FPR {escape(k)}{ci}" for k in tprs]
    rows = ['<div class="wide"><table>', "<tr>" + "".join(top) + "</tr>", table_row(sub, header=True, left=0)]
    any_unsupported = False
    for i, (name, m) in enumerate(matchers.items()):
        m = m or {}
        cells = [f'<a href="#m{i}">{escape(name)}</a>']
        for f in fmrs:
            p = next((q for q in m.get("leakage") or [] if q.get("fmr") == f), None)
            if p is None:
                cells += ["–"] * 3
                continue
            mark = "" if p.get("supported", True) else " †"
            any_unsupported |= bool(mark)
            cells += [ci_html(p.get("leak_rate"), p.get("leak_rate_ci"), mark=mark),
                      escape(fmt_pct(p.get("chance_rate"))), escape(fmt_ratio(p.get("ratio")))]
        ms = m.get("membership")
        if ms:
            cells.append(ci_html(ms.get("auc"), ms.get("auc_ci"), fmt_num))
            cells += [ci_html((ms.get("tpr_at_fpr") or {}).get(k), (ms.get("tpr_at_fpr_ci") or {}).get(k))
                      for k in tprs]
        else:
            cells += ['<span class="note">not run</span>'] + ["–"] * len(tprs)
        rows.append(table_row(cells))
    rows.append("</table></div>")
    notes = ["Leak rate: the fraction of generated samples whose best score against the training identities "
             "reaches the matcher's threshold at that FMR. Chance: the rate expected if the generator had "
             "never seen those people (lower bound; the matcher sections give both bounds). "
             "Ratio: leak rate / chance rate."]
    if any_unsupported:
        notes.append("† FMR below 1 / impostor pairs: the data cannot resolve it; the threshold only "
                     "excludes every impostor pair seen.")
    if any(not (m or {}).get("membership") for m in matchers.values()):
        notes.append("Membership not run: it needs held-out images of training identities (--members) "
                     "and images of people never in training (--nonmembers).")
    return "\n".join(rows) + "".join(f'<p class="note">{escape(n)}</p>' for n in notes)


def _value(v) -> str:
    if isinstance(v, float):
        return nonfinite_text(v) or f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    return "–" if v is None else str(v)


def _kv_table(d: dict) -> str:
    if not d:
        return '<p class="note">none recorded</p>'
    return "<table>" + "".join(table_row([escape(k), escape(_value(v))], left=2) for k, v in d.items()) + "</table>"


def _inputs_table(inputs: dict) -> str:
    if not inputs:
        return '<p class="note">none recorded</p>'
    keys = []
    for d in inputs.values():
        keys += [k for k in (d or {}) if k not in keys and k != "source"]
    rows = ["<table>", table_row(["set", "source"] + [escape(k) for k in keys], header=True, left=2)]
    for name, d in inputs.items():
        if d is None:
            rows.append(table_row([escape(name), '<span class="note">not given</span>'] + [""] * len(keys), left=2))
        else:
            rows.append(table_row([escape(name), escape(d.get("source", "?"))]
                                  + [escape(_value(d.get(k))) for k in keys], left=2))
    rows.append("</table>")
    return "\n".join(rows)


def _matcher_section(i: int, name: str, m: dict, pairs: list, show_training: bool, level: float) -> str:
    rr, rg = m.get("rr") or {}, m.get("rg") or {}
    parts = [f'<h2 id="m{i}">Matcher {escape(name)}</h2>', "<table>"]
    facts = [("version", m.get("version")), ("embedding dim", m.get("embedding_dim")),
             ("threshold source", m.get("threshold_source"))]
    for kind in ("genuine", "impostor"):
        s = rr.get(kind) or {}
        if s:
            used = f"{_value(s.get('pairs_used'))} of {_value(s.get('pairs_total'))}"
            facts.append((f"R-R {kind} pairs", used + (" (sampled)" if s.get("sampled") else "")))
            facts.append((f"R-R {kind} mean score", fmt_num(s.get("mean"))))
    facts += [("R-R EER", fmt_pct(rr.get("eer"))), ("R-G best score mean", fmt_num(rg.get("mean"))),
              ("KS(R-G best, R-R genuine)", fmt_num(rg.get("ks_vs_genuine"))),
              ("KS(R-G best, R-R impostor)", fmt_num(rg.get("ks_vs_impostor")))]
    parts += [table_row([escape(k), escape(_value(v))], left=2) for k, v in facts if v is not None] + ["</table>"]
    parts += [_warnings(m.get("warnings") or []),
              "<h3>Identity leakage</h3>", _leakage_table(m.get("leakage") or [], level),
              _published_table(m.get("published"), level)]
    hist = plot_histograms(m)
    if hist:
        parts.append(img_tag(hist, f"score histograms of {name}", "plot"))
    parts.append("<h3>Identity membership</h3>")
    ms = m.get("membership")
    if ms:
        parts.append(_membership_table(ms, level))
        roc = plot_roc(ms)
        if roc:
            parts.append(img_tag(roc, f"membership ROC of {name}", "plot"))
    else:
        parts.append('<p class="note">Not run: it needs --members and --nonmembers.</p>')
    parts += [_leakers_table(m), _pairs_grid(name, m.get("top_pairs") or [], pairs, show_training)]
    return "\n".join(parts)


def _threshold_html(p: dict) -> str:
    ci = p.get("threshold_ci")
    if not ci or None in ci:
        return escape(fmt_num(p.get("threshold"), 4))
    return (f'{escape(fmt_num(p.get("threshold"), 4))} <span class="ci">[{escape(fmt_num(ci[0], 4))}, '
            f'{escape(fmt_num(ci[1], 4))}]</span>')


def _warnings(warnings: list) -> str:
    if not warnings:
        return ""
    return ('<div class="warn"><b>Read before trusting these numbers:</b><ul>'
            + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul></div>")


def _published_table(pub: Optional[dict], level: float) -> str:
    if not pub:
        return ""
    pct = f"{100 * level:g}%"
    facts = [("rule", escape(pub.get("rule"))), ("source", escape(pub.get("source"))),
             (f"leak rate [{pct} CI]", ci_html(pub.get("leak_rate"), pub.get("leak_rate_ci"))),
             ("leaking samples", escape(_value(pub.get("leaking_samples")))),
             ("mean nearest distance", escape(fmt_num(pub.get("nearest_distance_mean"))))]
    return ("<h4>At the matcher's published operating point</h4><table>"
            + "".join(table_row([escape(k), v], left=2) for k, v in facts) + "</table>")


def _provenance(leakage: list) -> str:
    """Where the thresholds came from and from how much data, once per distinct source."""
    seen = []
    for p in leakage:
        key = (p.get("threshold_source"), p.get("genuine_pairs"), p.get("impostor_pairs"),
               p.get("calibration_identities"))
        if key[0] and key not in seen:
            seen.append(key)
    return "".join(f'<p class="note">Thresholds from {escape(src)}: {escape(_value(g))} genuine and '
                   f"{escape(_value(i))} impostor pairs of {escape(_value(k))} identities.</p>"
                   for src, g, i, k in seen)


def _leakage_table(leakage: list, level: float) -> str:
    if not leakage:
        return '<p class="note">no operating points</p>'
    pct = f"{100 * level:g}%"
    head = ["FMR", "observed FMR", f"threshold [{pct} CI over identities]", "supported", f"leak rate [{pct} CI]", "leaking samples",
            "chance rate [bounds]", "ratio"]
    rows = ["<table>", table_row(head, header=True, left=0)]
    for p in leakage:
        rows.append(table_row([
            escape(fmt_fmr(p.get("fmr"))), escape(fmt_fmr(p.get("fmr_observed"))), _threshold_html(p),
            "yes" if p.get("supported", True) else "no †", ci_html(p.get("leak_rate"), p.get("leak_rate_ci")),
            escape(_value(p.get("leaking_samples"))), ci_html(p.get("chance_rate"), p.get("chance_rate_bounds")),
            escape(fmt_ratio(p.get("ratio")))], left=0))
    rows.append("</table>")
    rows += [f'<p class="note">† {escape(p["why_unsupported"])}: its leak rate is not a finding.</p>'
             for p in leakage if not p.get("supported", True) and p.get("why_unsupported")]
    return "\n".join(rows) + _provenance(leakage)


def _membership_table(ms: dict, level: float) -> str:
    pct = f"{100 * level:g}%"
    facts = [("attack score", escape(f"{_value(ms.get('score'))} (k = {_value(ms.get('k'))})")),
             ("member identities", escape(_value(ms.get("members")))),
             ("non-member identities", escape(_value(ms.get("nonmembers")))),
             (f"AUC [{pct} CI]", ci_html(ms.get("auc"), ms.get("auc_ci"), fmt_num))]
    for k, v in sorted((ms.get("tpr_at_fpr") or {}).items(), key=lambda kv: -float(kv[0])):
        facts.append((f"TPR at FPR {k} [{pct} CI]", ci_html(v, (ms.get("tpr_at_fpr_ci") or {}).get(k))))
    return "<table>" + "".join(table_row([escape(k), v], left=2) for k, v in facts) + "</table>"


def _leakers_table(m: dict) -> str:
    leakers = m.get("top_leakers") or []
    fmr = m.get("leak_counts_fmr")
    if fmr is None:
        fmrs = [p.get("fmr") for p in m.get("leakage") or []]
        fmr = fmrs[len(fmrs) // 2] if fmrs else None
    head = f"<h3>Top leakers at FMR {escape(fmt_fmr(fmr))}</h3>"
    if not leakers:
        return head + '<p class="note">No training identity has a leaking sample.</p>'
    rows = [table_row(["training identity", "leaking generated samples"], header=True, left=0)]
    rows += [table_row([escape(_identity(x.get("identity"), x.get("name"))), escape(_value(x.get("count")))], left=0)
             for x in leakers]
    return head + "<table>" + "".join(rows) + "</table>"


def _identity(identity, name) -> str:
    return f"{name} ({_value(identity)})" if name else _value(identity)


def _pairs_grid(name: str, top_pairs: list, pairs: list, show_training: bool) -> str:
    leaking = [j for j, t in enumerate(top_pairs) if t.get("leaks", True)]
    if leaking:
        head = "<h3>Top leaking pairs</h3>"
    else:
        head = ("<h3>Closest pairs</h3><p class=\"note\">None of these pairs passes any threshold: they are "
                "the generated faces closest to a training identity, not leaks.</p>")
        leaking = list(range(len(top_pairs)))
    if not top_pairs:
        return "<h3>Top leaking pairs</h3>" + '<p class="note">none</p>'
    if not show_training:
        head += ('<p class="note">Training faces are left out of this file; write the report with '
                 "--show-training-images to include them.</p>")
    cells = []
    for j in leaking:
        t = top_pairs[j]
        g_index, t_index = _value(t.get("generated_index")), _value(t.get("training_index"))
        gen, train = pairs[j] if j < len(pairs) else (None, None)
        where = f"images[{name!r}]['leak_pairs'][{j}]"
        faces = [img_tag(png_bytes(gen, where=where + "[0]"), f"generated {g_index}", "face") if gen is not None
                 else '<div class="hidden">generated image not available</div>']
        if not show_training:
            faces.append(f'<div class="hidden">{escape(HIDDEN_TEXT)}</div>')
        elif train is None:
            faces.append(f'<div class="hidden">{escape(MISSING_TEXT)}</div>')
        else:
            faces.append(img_tag(png_bytes(train, where=where + "[1]"), f"training {t_index}", "face"))
        caption = (f"score {escape(fmt_num(t.get('score')))}<br>"
                   f"generated {escape(t.get('generated_name') or g_index)} · "
                   f"training {escape(t.get('training_name') or t_index)} "
                   f"(identity {escape(_identity(t.get('identity'), t.get('identity_name')))})")
        cells.append(f'<div class="pair">{" ".join(faces)}<br>{caption}</div>')
    return head + '<div class="pairs">' + "\n".join(cells) + "</div>"
