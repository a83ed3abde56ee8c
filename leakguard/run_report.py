"""`leakguard report RUN_DIR`: one self-contained page, RUN_DIR/report.html, of a training run's
evaluations (eval.jsonl, written by the in-training evaluation): leak rate per matcher and FMR,
membership AUC and every fidelity number over kimg as plots, the latest evaluation's tables, the
run's config and, when present, its privacy record. It shows no training image.
"""
import json
from pathlib import Path

from leakguard import run_files
from leakguard.atomic import write_text
from leakguard.html import escape, figure_png, fmt_ci, fmt_num, img_tag, new_figure


def read_evaluations(run_dir: Path) -> list[dict]:
    path = run_dir / run_files.EVAL
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no evaluations in this run folder; train with eval.every_kimg set "
                                "(and eval.matchers or eval.fidelity) to write them")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON line ({e.msg})") from None
    if not out:
        raise ValueError(f"{path}: empty; the run has not reached its first evaluation")
    return out


def _series(evals: list[dict]) -> dict[str, dict[str, list]]:
    """{panel title: {curve label: [(kimg, value, (low, high) or None)]}} over every evaluation."""
    panels: dict[str, dict[str, list]] = {}
    for e in evals:
        for name, m in e.get("audit", {}).items():
            for row in m["leakage"]:
                panels.setdefault(f"leak rate: {name}", {}).setdefault(f"FMR {row['fmr']:g}", []).append(
                    (e["kimg"], row["leak_rate"], row.get("leak_rate_ci")))
            if "membership" in m:
                panels.setdefault("membership AUC", {}).setdefault(name, []).append(
                    (e["kimg"], m["membership"]["auc"], m["membership"].get("auc_ci")))
        for prefix, s in e.get("fidelity", {}).items():
            panels.setdefault(prefix, {}).setdefault(prefix, []).append((e["kimg"], s[prefix], None))
            for key in ("precision", "recall"):
                panels.setdefault(f"{prefix}: precision / recall", {}).setdefault(key, []).append(
                    (e["kimg"], s[f"{prefix}_{key}"], None))
        if "privacy" in e:
            panels.setdefault("privacy", {}).setdefault("epsilon", []).append((e["kimg"], e["privacy"]["epsilon"], None))
    return panels


def plot_panels(panels: dict) -> bytes:
    fig, axes = new_figure(4.2 * min(len(panels), 3), 3.2 * ((len(panels) + 2) // 3), 1)
    fig.clear()
    cols = min(len(panels), 3)
    rows = (len(panels) + cols - 1) // cols
    for i, (title, curves) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, points in curves.items():
            x = [p[0] for p in points]
            y = [p[1] if p[1] is not None else float("nan") for p in points]
            ax.plot(x, y, marker="o", ms=3, label=label)
            lows = [p[2][0] if p[2] else None for p in points]
            if all(v is not None for v in lows):
                ax.fill_between(x, lows, [p[2][1] for p in points], alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("kimg", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(curves) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return figure_png(fig)


def _latest_tables(e: dict) -> str:
    parts = []
    for name, m in e.get("audit", {}).items():
        rows = "".join(f"<tr><td>{escape(format(r['fmr'], 'g'))}</td><td>{escape(fmt_num(r['threshold'], 4))}</td>"
                       f"<td>{escape(fmt_ci(r['leak_rate'], r.get('leak_rate_ci')))}</td>"
                       f"<td>{escape(fmt_ci(r['chance_rate'], None))}</td></tr>" for r in m["leakage"])
        auc = (f"<p>membership AUC "
               f"{escape(fmt_ci(m['membership']['auc'], m['membership'].get('auc_ci'), fmt_num))}</p>"
               if "membership" in m else "")
        parts.append(f"<h3>{escape(name)} <small>({escape(m['version'])})</small></h3><table><tr><th>FMR</th>"
                     f"<th>threshold</th><th>leak rate</th><th>chance</th></tr>{rows}</table>{auc}")
    for prefix, s in e.get("fidelity", {}).items():
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(fmt_num(s[k], 5))}</td></tr>"
                       for k in (prefix, f"{prefix}_kid", f"{prefix}_kid_std", f"{prefix}_precision",
                                 f"{prefix}_recall"))
        parts.append(f"<h3>{escape(prefix)} <small>({escape(s['extractor_version'])}, {s['real_count']} real, "
                     f"{s['fake_count']} generated)</small></h3><table>{rows}</table>")
    return "".join(parts)


def record_value(value) -> str:
    """A privacy record's field as text: a list one item after another, a mechanism as its name and
    numbers (sigma, q, steps)."""
    if isinstance(value, list):
        return "; ".join(record_value(v) for v in value)
    if isinstance(value, dict) and {"name", "sigma", "q", "steps"} <= set(value):
        return f"{value['name']}: sigma {value['sigma']:g}, q {value['q']:g}, {value['steps']} steps"
    return str(value)


def render_run_report(run_dir: Path, evals: list[dict], config_text: str | None, privacy: dict | None) -> str:
    latest = evals[-1]
    privacy_html = ("<h2>Privacy record</h2><table>" + "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(record_value(v))}</td></tr>"
        for k, v in privacy.items()) + "</table>") if privacy else "<h2>Privacy</h2><p>trained without DP</p>"
    note = latest.get("privacy", {}).get("note")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(run_dir.name)}: evaluation</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:1em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px}}pre{{background:#f6f6f6;padding:8px;font-size:12px}}
.plots{{max-width:100%}}</style></head><body>
<h1>{escape(run_dir.name)}</h1>
<p>{len(evals)} evaluations, the latest at {latest['kimg']:.3f} kimg on {latest['num_fakes']} generated images
(seeds {escape(latest['seeds'])}).</p>
{f'<p><b>Outside the guarantee:</b> {escape(note)}</p>' if note else ''}
<h2>Over training</h2>{img_tag(plot_panels(_series(evals)), "evaluations over kimg", "plots")}
<h2>Latest evaluation</h2>{_latest_tables(latest)}
{privacy_html}
<h2>Config</h2><pre>{escape(config_text or "(no config.yaml)")}</pre>
</body></html>"""


def write_run_report(run_dir: Path, privacy: dict | None = None) -> Path:
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir}: is a file, not a run folder; give the run's folder (runs/<name>-<n>)")
    if not run_dir.is_dir():
        raise NotADirectoryError(f"run folder not found: {run_dir}")
    evals = read_evaluations(run_dir)
    config = run_dir / run_files.CONFIG
    html = render_run_report(run_dir, evals, config.read_text() if config.is_file() else None, privacy)
    return write_text(run_dir / run_files.REPORT_HTML, html)
