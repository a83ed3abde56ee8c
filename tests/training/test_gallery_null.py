"""tools/gallery_null.py: each row holds its two audits' numbers at the FMR asked for, and the verdict compares
their intervals."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from gallery_null import leak_at, markdown, verdict  # noqa: E402


def report(rate: float, lo: float, hi: float) -> dict:
    rows = [{"fmr": 1e-2, "leak_rate": 0.9, "leak_rate_ci": [0.8, 1.0]},
            {"fmr": 1e-3, "leak_rate": rate, "leak_rate_ci": [lo, hi]}]
    return {"matchers": {"synth_b": {"leakage": rows}}}


def test_the_rate_is_the_reports_at_the_fmr():
    assert leak_at(report(0.3, 0.25, 0.35), "synth_b", 1e-3) == {"rate": 0.3, "ci": [0.25, 0.35]}


def test_verdict_compares_intervals():
    new = {"rate": 0.30, "ci": [0.28, 0.32]}
    assert verdict({"rate": 0.40, "ci": [0.33, 0.47]}, new) == "above"
    assert verdict({"rate": 0.20, "ci": [0.15, 0.27]}, new) == "below"
    assert verdict({"rate": 0.33, "ci": [0.32, 0.34]}, new) == "overlap"   # touching counts as overlapping
    assert verdict(new, new) == "overlap"


def test_markdown_has_one_line_per_arm_and_matcher():
    cell = {"trained": {"rate": 0.5, "ci": [0.4, 0.6]}, "new": {"rate": 0.1, "ci": [0.05, 0.15]}, "verdict": "above"}
    text = markdown({"dp8_s0": {"synth_b": cell, "synth": cell}})
    assert "| dp8_s0 | synth_b | 0.500 [0.400, 0.600] | 0.100 [0.050, 0.150] | above |" in text
    assert len(text.strip().splitlines()) == 4
