"""The "Are the generated images faces?" part of report.html, from report["faces"] (leakguard.audit.faces):
one table of each test's share of faces, one of the leak rates among the faces beside those over all
generated images, and a warning box when most generated images are not faces under some test, since a
leak rate near 0 from images that are no faces is no evidence of privacy. Every string is escaped.
"""
from leakguard.audit.faces import MIN_FACE_SHARE
from leakguard.html import ci_html, escape, fmt_fmr, fmt_pct, table_row

KIND_NAMES = {"manifold": "k-NN manifold", "detector": "face detector"}


def _entries(faces: dict) -> list[tuple[str, str, dict]]:
    return [(kind, name, e or {}) for kind, tests in faces.items() for name, e in (tests or {}).items()]


def _shares(entries: list, pct: str) -> str:
    rows = ["<table>", table_row(["test", "under", "what counts as a face", f"faces [{pct} CI]", "count"],
                                 header=True, left=3)]
    for kind, name, e in entries:
        mark = " — mostly not faces" if e.get("mostly_not_faces") else ""
        rows.append(table_row([escape(KIND_NAMES.get(kind, kind)), escape(name), escape(e.get("rule", "?")),
                               ci_html(e.get("share"), e.get("share_ci"), mark=mark),
                               escape(f"{e.get('count', '?')} of {e.get('of', '?')}")], left=3))
    return "\n".join(rows + ["</table>"])


def _all_rate(matchers: dict, matcher: str, fmr) -> tuple:
    row = next((r for r in ((matchers.get(matcher) or {}).get("leakage") or []) if r.get("fmr") == fmr), {})
    return row.get("leak_rate"), row.get("leak_rate_ci")


def _leakage(entries: list, matchers: dict, pct: str) -> str:
    rows = ["<table>", table_row(["faces by", "matcher", "FMR", f"leak rate among the faces [{pct} CI]",
                                  "leaking faces", f"leak rate, all generated [{pct} CI]"], header=True, left=2)]
    for kind, name, e in entries:
        for matcher, leak in (e.get("leakage") or {}).items():
            for r in leak or []:
                rows.append(table_row([
                    escape(f"{KIND_NAMES.get(kind, kind)} {name}"), escape(matcher),
                    escape(fmt_fmr(r.get("fmr"))) + ("" if r.get("supported", True) else " †"),
                    ci_html(r.get("leak_rate"), r.get("leak_rate_ci")),
                    escape(f"{r.get('leaking_samples', '?')} of {e.get('count', '?')}"),
                    ci_html(*_all_rate(matchers, matcher, r.get("fmr")))], left=2))
    if len(rows) == 2:
        return '<p class="note">No matcher in this report: no leak rates among the faces.</p>'
    return "\n".join(rows + ["</table>"])


def faces_html(faces: dict, matchers: dict, level: float) -> str:
    """The section (an h2 and its tables), or '' when the report has no face tests."""
    entries = _entries(faces or {})
    if not entries:
        return ""
    pct = f"{100 * level:g}%"
    parts = ["<h2>Are the generated images faces?</h2>"]
    few = [f"{KIND_NAMES.get(k, k)} {n} ({fmt_pct(e.get('share'))})" for k, n, e in entries
           if e.get("mostly_not_faces")]
    if few:
        parts.append(f'<div class="warn"><b>Most generated images are not faces</b> under {escape(", ".join(few))}: '
                     f"below {escape(fmt_pct(MIN_FACE_SHARE, 0))}. A low leak rate from images that are no faces "
                     "is no evidence of privacy; read the leak rates among the faces.</div>")
    parts += [_shares(entries, pct), _leakage(entries, matchers, pct),
              '<p class="note">k-NN manifold: the generated image lies inside the ball of some training image '
              "that reaches its k-th nearest other training image in the extractor's features (Kynkäänniemi et "
              "al. 2019; the share is the improved precision). Face detector: the matcher's detector finds a "
              "face. Leak rate among the faces: of the images that are faces, those whose best score over the "
              "training identities reaches the threshold; intervals: Wilson for the share, bootstrap over the "
              "faces for the leak rate. † FMR not supported by the data (see the matcher's section).</p>"]
    return "\n".join(parts)
