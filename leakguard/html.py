"""The shared page toolkit: what every self-contained LeakGuard HTML page is built from.

Escaping, table rows, base64 PNG images, matplotlib figures, the pages' CSS, and the formats of
numbers and intervals, for the audit's report (audit/report.py), the DP audit's (dpaudit/report.py),
the release filter's page (filter/page.py), a sweep's (sweep/report.py, sweep/plot.py) and a
training run's (run_report.py).

Figures are matplotlib `Figure` objects, which render through Agg without pyplot, so no backend is
chosen and no window opens, even in a notebook; matplotlib is imported only when a figure is made.

Formats: rates in percent (two decimals, more below 0.1% so three significant digits show; an
interval shares the decimals of its smallest value), intervals as "estimate [low, high]", numbers
with three decimals unless asked otherwise, FMRs as %g, and "–", "n/a", "∞" for None, NaN and inf.
"""
import base64
import html
import io
import math
from typing import Optional

import numpy as np
from PIL import Image

FACE_PX = 256                # faces larger than this are downscaled before embedding (file size)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.meta, .note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; } th[colspan] { text-align: center; }
.ci { white-space: nowrap; }
.wide { overflow-x: auto; } .wide table { font-size: 0.8em; } .wide th, .wide td { padding: 0.2em 0.4em; }
img.plot { max-width: 100%; display: block; margin: 0.5em 0; }
.pairs { display: flex; flex-wrap: wrap; gap: 1em; }
.pair { border: 1px solid #ccc; padding: 0.4em; text-align: center; font-size: 0.85em; }
.pair img, .hidden { width: 128px; height: 128px; display: inline-block; vertical-align: top; }
.hidden { background: #999; color: #fff; font-size: 0.8em; box-sizing: border-box; padding: 2.5em 0.5em 0; }
.warn { border: 1px solid #c90; background: #fff8e6; padding: 0.4em 0.8em; margin: 0.5em 0; font-size: 0.9em; }
"""


# ---- strings and table rows ----------------------------------------------------------------------

def escape(x) -> str:
    """str(x) safe inside HTML text and attribute values (quotes escaped too)."""
    return html.escape(str(x), quote=True)


def table_row(cells, header: bool = False, left: int = 1) -> str:
    """cells are HTML already; the first `left` cells are aligned left."""
    tag, cls = ("th" if header else "td"), ' class="l"'
    return "<tr>" + "".join(f'<{tag}{cls if j < left else ""}>{c}</{tag}>' for j, c in enumerate(cells)) + "</tr>"


# ---- numbers and intervals -----------------------------------------------------------------------

def nonfinite_text(x) -> Optional[str]:
    """The text for a value that is no finite number (None, NaN, ±inf), else None."""
    if x is None:
        return "–"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return None


def _pct_decimals(*xs) -> int:
    """Two decimals, more when the smallest nonzero value is below 0.1%, to show three significant digits."""
    small = [abs(100 * x) for x in xs if nonfinite_text(x) is None and x != 0]
    return 2 if not small or min(small) >= 0.1 else min(8, 2 - math.floor(math.log10(min(small))))


def fmt_pct(x, decimals: Optional[int] = None) -> str:
    """0.0125 -> '1.25%'; 2.5e-06 -> '0.000250%'."""
    if nonfinite_text(x):
        return nonfinite_text(x)
    return f"{100 * x:.{_pct_decimals(x) if decimals is None else decimals}f}%"


def fmt_num(x, decimals: int = 3) -> str:
    return nonfinite_text(x) or f"{x:.{decimals}f}"


def fmt_fmr(x) -> str:
    return nonfinite_text(x) or f"{x:g}"


def fmt_ci(x, ci, fmt=fmt_pct) -> str:
    """'1.25% [0.98%, 1.52%]': the estimate and its interval (percentages with shared decimals), or
    the estimate alone."""
    if not ci or len(ci) != 2:
        return fmt(x)
    if fmt is fmt_pct:
        d = _pct_decimals(x, *ci)
        return f"{fmt_pct(x, d)} [{fmt_pct(ci[0], d)}, {fmt_pct(ci[1], d)}]"
    return f"{fmt(x)} [{fmt(ci[0])}, {fmt(ci[1])}]"


def ci_html(x, ci, fmt=fmt_pct, mark: str = "") -> str:
    """fmt_ci as HTML, the interval (and a mark after it) kept on one line so a narrow cell breaks
    before it."""
    estimate, _, interval = fmt_ci(x, ci, fmt).partition(" [")
    return escape(estimate) + (f' <span class="ci">[{escape(interval + mark)}</span>' if interval else escape(mark))


# ---- images and figures --------------------------------------------------------------------------

def png_bytes(image: np.ndarray, max_px: int = FACE_PX, where: str = "report image") -> bytes:
    """[H, W, 3|4|1] or [H, W] uint8 -> PNG, downscaled to at most max_px on the longer side."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{where}: expected uint8 [H, W], [H, W, 3] or [H, W, 4], "
                         f"got {a.dtype} {list(a.shape)}")
    im = Image.fromarray(a[:, :, 0] if a.ndim == 3 and a.shape[2] == 1 else a)
    if max(im.size) > max_px:
        scale = max_px / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def img_tag(png: bytes, alt: str, cls: str) -> str:
    """An <img> of class `cls` whose source is the PNG itself, as a base64 data URI."""
    return f'<img class="{cls}" alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def new_figure(width: float, height: float, panels: int = 1):
    """(a matplotlib Figure of width x height inches, its `panels` axes side by side)."""
    try:
        from matplotlib.figure import Figure  # lazily: a page's data (report.json, eval.jsonl) needs none
    except ImportError as err:
        raise ImportError("the HTML page needs matplotlib for its plots: pip install matplotlib (its data "
                          "files were written)") from err
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def mpl_literal(text: str) -> str:
    """A string matplotlib draws literally: '$' would start mathtext."""
    return str(text).replace("$", r"\$")
