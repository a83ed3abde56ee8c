"""The headline study's table, Pareto plots and interval comparisons, from the sweep's own results.

    write_study(Path("runs/sweeps/synthfaces32-study"), null, {arm: planned seeds})   # -> study.md, study_*.png

Every cell is a group of leakguard.sweep.results.group_rows (the mean over the seeds that finished, with the 95%
Student-t interval over seeds; with one seed the trial's own interval), so it equals the trials' eval.jsonl and
release.pt records as the sweep's results do. The null (faces of people never trained on, audited against the
same training set with the same matchers) stands beside every leak rate. The comparisons section states, for
each arm against the undefended one and against the null, only whether the intervals are apart and which way.
"""
import math
from pathlib import Path

from leakguard.sweep.pareto import fronts
from leakguard.sweep.plot import pareto_plot
from leakguard.sweep.results import group_rows, read_rows

JUDGE, SECOND, FMR, FEATURES = "synth_b", "synth", 1e-3, "fd_synthfaces"
LEAK, LEAK2 = f"leak@{JUDGE}@{FMR:g}", f"leak@{SECOND}@{FMR:g}"
AUC, AUC_OVER, FD = f"auc@{JUDGE}", f"auc_overrep@{JUDGE}", f"fd@{FEATURES}"
FACES = f"faces@{FEATURES}"
PLOTS = {LEAK: "study_leak.png", AUC_OVER: "study_auc_overrep.png", AUC: "study_auc.png",
         "epsilon": "study_epsilon.png"}
UNDEFENDED = "undefended"
BOUNDED = {LEAK, LEAK2, FACES, AUC, AUC_OVER}


def fmt(value, interval=None, pct: bool = False, digits: int = 2) -> str:
    """'21.5% [19.0, 24.2]' or '39.3 [37.0, 41.6]'; '–' when there is no number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞ (no DP)"
    scale, unit = (100, "%") if pct else (1, "")
    text = f"{value * scale:.{1 if pct else digits}f}{unit}"
    if interval:
        text += f" [{interval[0] * scale:.{1 if pct else digits}f}, {interval[1] * scale:.{1 if pct else digits}f}]"
    return text


def clipped(col: str, interval: list | None) -> list | None:
    """A t interval over few seeds can pass a measure's range (a leak rate of -143%): shown cut to it (rates,
    shares and AUCs lie in [0, 1]; FD and sec/kimg are not negative)."""
    if not interval:
        return interval
    top = 1.0 if col in BOUNDED else math.inf
    return [max(interval[0], 0.0), min(interval[1], top)]


def cell(group: dict, col: str, pct: bool = False, digits: int = 2) -> str:
    return fmt(group["means"].get(col), clipped(col, group["intervals"].get(col)), pct, digits)


def ordered(groups: list[dict], arms: list[str]) -> list[dict]:
    """The groups in the spec's order of arms (then any other group by name)."""
    rank = {a: i for i, a in enumerate(arms)}
    return sorted(groups, key=lambda g: (rank.get(g["group"], len(rank)), g["group"]))


def mark_faces(groups: list[dict], null: dict) -> list[dict]:
    """Each group's `not_faces` by the null instead of the sweep's fixed share: with 50 training people (half the
    images one person's) the training images' k-NN manifold is narrow, and real faces of people never trained on
    land in it only null["faces"] of the time. A group draws no faces when its share's interval lies wholly
    below the null's (fewer of its fakes look like faces than real photos of new people)."""
    out = []
    for g in groups:
        ci = g["intervals"].get(FACES)
        below = apart(ci, null.get("faces_ci")) == "below" if ci and null.get("faces_ci") else g.get("not_faces")
        out.append({**g, "not_faces": bool(below)})
    return out


def table(groups: list[dict], null: dict, seeds: dict[str, int]) -> str:
    head = (f"| arm | seeds | ε per person (δ 1e-5) | FD {FEATURES.removeprefix('fd_')} ↓ | faces (share in the "
            f"manifold) | leak {JUDGE} (held out) @ FMR {FMR:g} | leak {SECOND} (seen) @ FMR {FMR:g} | membership "
            f"AUC {JUDGE}, all | AUC {JUDGE}, over-represented person | sec/kimg |")
    lines = [head, "|" + "---|" * 10]
    for g in groups:
        eps = g["means"].get("epsilon")
        planned = seeds.get(g["group"], g["n_seeds"])
        lines.append(f"| {g['group']}{' (not faces)' if g.get('not_faces') else ''} | {g['n_seeds']}/{planned} | "
                     f"{fmt(eps)} | {cell(g, FD)} | {cell(g, FACES, pct=True)} | "
                     f"{cell(g, LEAK, pct=True)} | {cell(g, LEAK2, pct=True)} | {cell(g, AUC)} | {cell(g, AUC_OVER)} | "
                     f"{cell(g, 'sec_per_kimg', digits=1)} |")
    judge, second = (null.get(m, {}) for m in (JUDGE, SECOND))
    lines.append(f"| **null**: faces of people never trained on | | | {fmt(null.get('fd'))} | "
                 f"{fmt(null.get('faces'), null.get('faces_ci'), pct=True)} | "
                 f"{fmt(judge.get('leak_rate'), judge.get('leak_rate_ci'), True)} | "
                 f"{fmt(second.get('leak_rate'), second.get('leak_rate_ci'), True)} | 0.5 by construction | | |")
    return "\n".join(lines) + "\n"


def apart(a: list | None, b: list | None) -> str | None:
    """'above' / 'below' when interval a lies wholly above / below b, 'overlapping' otherwise; None without both."""
    if not a or not b:
        return None
    if a[0] > b[1]:
        return "above"
    if a[1] < b[0]:
        return "below"
    return "overlapping"


def comparisons(groups: list[dict], null: dict) -> list[str]:
    """One line per arm and measure: its interval against the undefended arm's and against the null's."""
    base = next((g for g in groups if g["group"] == UNDEFENDED), None)
    null_ci = null.get(JUDGE, {}).get("leak_rate_ci")
    out = []
    for g in groups:
        leak = g["intervals"].get(LEAK)
        parts = []
        vs_null = apart(leak, null_ci)
        if vs_null:
            parts.append(f"leak {JUDGE} {cell(g, LEAK, pct=True)} is {vs_null} the null's "
                         f"{fmt(null[JUDGE]['leak_rate'], null_ci, True)}")
        if base is not None and g is not base:
            for col, what, pct in ((LEAK, f"leak {JUDGE}", True), (FD, "FD", False),
                                   (AUC_OVER, "over-rep. AUC", False)):
                way = apart(g["intervals"].get(col), base["intervals"].get(col))
                if way:
                    parts.append(f"{what} {cell(g, col, pct)} is {way} the undefended arm's {cell(base, col, pct)}")
        for col, what in ((AUC, "membership AUC"), (AUC_OVER, "over-rep. AUC")):
            ci = g["intervals"].get(col)
            if ci:
                parts.append(f"{what} {cell(g, col)} " + ("excludes 0.5" if ci[0] > 0.5 or ci[1] < 0.5 else
                                                          "covers 0.5 (chance)"))
        if g.get("not_faces"):
            parts.append("its share of faces is below the null's: it draws no faces, so its leak rates are no privacy")
        out.append(f"- **{g['group']}** ({g['n_seeds']} seeds): " + "; ".join(parts) + ".")
    return out


def plots(out: Path, groups: list[dict], null: dict) -> dict[str, str]:
    """The Pareto plots (privacy axis against FD) as PNG files; {axis: file name}."""
    written = {}
    front = fronts(groups)
    for axis, name in PLOTS.items():
        mark = front.get(axis)
        if mark is None:   # no group has this number, or none has an FD
            continue
        band = None
        if axis == LEAK and null.get(JUDGE):
            band = (null[JUDGE]["leak_rate"], null[JUDGE]["leak_rate_ci"])
        (out / name).write_bytes(pareto_plot(groups, axis, FD, mark, band, "null: faces of people never trained on",
                                             "no faces (share below the null's): on no front"))
        written[axis] = name
    return written


def trials_table(rows: list[dict], arms: list[str], null: dict) -> str:
    """Each finished trial with its own 95% bootstrap intervals, and whether its held-out leak rate is apart
    from the null's."""
    rank = {a: i for i, a in enumerate(arms)}
    lines = [f"| trial | leak {JUDGE} @ FMR {FMR:g} [95% CI] | vs the null | FD | faces | AUC {JUDGE}, over-rep. |",
             "|---|---|---|---|---|---|"]
    null_ci = null.get(JUDGE, {}).get("leak_rate_ci")
    for r in sorted((r for r in rows if r["status"] == "done"), key=lambda r: (rank.get(r["group"], 99), r["seed"])):
        m, ci = r["metrics"], r["intervals"]
        lines.append(f"| {r['trial']} | {fmt(m.get(LEAK), ci.get(LEAK), True)} | {apart(ci.get(LEAK), null_ci) or '–'} "
                     f"| {fmt(m.get(FD))} | {fmt(m.get(FACES), ci.get(FACES), True)} | "
                     f"{fmt(m.get(AUC_OVER), ci.get(AUC_OVER))} |")
    return "\n".join(lines) + "\n"


def write_study(out: Path, null: dict, seeds: dict[str, int], note: str = "") -> Path:
    """study.md (table, plots, interval comparisons) and the plots in the sweep folder `out`; `seeds`: each arm's
    planned seed count, in the table's order."""
    arms = list(seeds)
    rows = read_rows(out)
    groups = mark_faces(ordered(group_rows(rows), arms), null)
    images = plots(out, groups, null)
    text = ["# The headline study: what each defence buys and costs", "", note, "",
            "Means over the seeds that finished, with 95% Student-t intervals over seeds, cut to each measure's range "
            "(one seed: the trial's own "
            "95% interval). Every number reads the training images: the data holder's view, outside every arm's "
            "(ε, δ).", "", table(groups, null, seeds), "## Interval comparisons", "", *comparisons(groups, null), "",
            "## Each trial", "", trials_table(rows, arms, null), "## Pareto plots (lower is better on both axes)", ""]
    text += [f"![{axis} against FD]({name})" for axis, name in images.items()]
    path = out / "study.md"
    path.write_text("\n".join(text) + "\n")
    return path
