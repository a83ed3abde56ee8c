"""filter.html: a short page of what the release filter removed, from the summary (summary.py).
No image at all unless the run wrote its removed images and the page is asked for the training images
too (--show-training-images): then the best-scoring removed pairs, each generated face beside the
nearest training image."""
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from leakguard.atomic import write_text
from leakguard.html import CSS, ci_html, escape, fmt_fmr, fmt_pct, img_tag, png_bytes, table_row

# training index -> uint8 [H, W, 3], for the pairs
TrainingImage = Callable[[int], np.ndarray]


def write_page(out: Path, summary: dict, training_image: Optional[TrainingImage] = None) -> Path:
    """Writes out/filter.html; `training_image` only with --show-training-images."""
    s = summary
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>LeakGuard release filter</title>", f"<style>{CSS}</style></head><body>",
             "<h1>LeakGuard release filter</h1>",
             f'<p>{s["kept"]:,} kept of {s["scored"]:,} candidates scored; removed as a likeness of a training '
             f'person: {ci_html(s["removed"]["rate"], s["removed"]["rate_ci"])} '
             f'({s["removed"]["count"]:,}); near-duplicates of a kept face: {s["near_duplicates"]:,}.</p>',
             f'<p class="note">{escape(s["note"])}</p>', f'<p class="warn">{escape(s["privacy"])}</p>',
             "<h2>Removed per matcher</h2>", _matcher_table(s["matchers"])]
    if s["kept_under_check_matchers"]:
        parts += ["<h2>The kept set under matchers that did not filter</h2>",
                  _check_table(s["kept_under_check_matchers"])]
    parts += ["<h2>Identities removed most</h2>", _identities(s["matchers"])]
    if training_image is not None:
        for name, m in s["matchers"].items():
            parts += [f"<h2>Best-scoring removed pairs under {escape(name)}</h2>", _pairs(out, m, training_image)]
    parts.append("</body></html>")
    return write_text(out / "filter.html", "\n".join(parts) + "\n")


def _matcher_table(matchers: dict) -> str:
    rows = [table_row(["matcher", "FMR", "threshold [interval]", "threshold source", "removed", "only by this matcher",
                       "chance band (nobody in training)"], header=True)]
    for name, m in matchers.items():
        lo, hi = m["chance_rate_bounds"]
        ci = m["threshold_ci"] or []
        rows.append(table_row([escape(name), fmt_fmr(m["fmr"]),
                               f'{m["threshold"]:.4f}' + (f' [{ci[0]:.4f}, {ci[1]:.4f}]' if ci else ""),
                               escape(m["threshold_source"]),
                               f'{ci_html(m["removed"]["rate"], m["removed"]["rate_ci"])} ({m["removed"]["count"]:,})',
                               f'{m["removed_only_by_this"]:,}', f"{fmt_pct(lo)} .. {fmt_pct(hi)}"], left=1))
    return "<table>" + "".join(rows) + "</table>"


def _check_table(checks: dict) -> str:
    rows = [table_row(["check matcher", "FMR", "threshold", "kept faces at or above it", "chance band", "supported"],
                      header=True)]
    for name, c in checks.items():
        k = c["kept_leaking"]
        lo, hi = c["chance_rate_bounds"]
        rows.append(table_row([escape(name), fmt_fmr(c["fmr"]), f'{c["threshold"]:.4f}',
                               f'{ci_html(k["rate"], k["rate_ci"])} ({k["count"]:,} of {k["of"]:,})',
                               f"{fmt_pct(lo)} .. {fmt_pct(hi)}",
                               "yes" if c["supported"] else escape(c["why_unsupported"])]))
    return "<table>" + "".join(rows) + "</table>"


def _identities(matchers: dict) -> str:
    rows = [table_row(["matcher", "identity", "removed faces"], header=True)]
    for name, m in matchers.items():
        rows += [table_row([escape(name), str(t["identity"]), str(t["removed"])]) for t in m["top_identities"][:10]]
    return "<table>" + "".join(rows) + "</table>"


def _pairs(out: Path, m: dict, training_image: TrainingImage) -> str:
    cells = []
    for p in m["top_pairs"]:
        path = out / "removed" / f'{p["label"]}.png'
        if not path.is_file():
            continue
        fake = np.asarray(Image.open(path).convert("RGB"))
        cells.append(f'<div class="pair">{img_tag(png_bytes(fake), p["label"], "face")} '
                     f'{img_tag(png_bytes(training_image(p["training_index"])), "training image", "face")}'
                     f'<br>{escape(p["label"])} · identity {p["identity"]} · {p["best"]:.4f}</div>')
    return f'<div class="pairs">{"".join(cells)}</div>' if cells else "<p>no removed image was written</p>"
