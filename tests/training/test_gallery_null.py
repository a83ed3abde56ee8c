"""tools/gallery_null.py: each row holds its two audits' numbers at the FMR asked for, and the verdict compares
their intervals."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import gallery_null  # noqa: E402
from gallery_null import leak_at, markdown, row  # noqa: E402


def report(rate: float, lo: float, hi: float) -> dict:
    rows = [{"fmr": 1e-2, "leak_rate": 0.9, "leak_rate_ci": [0.8, 1.0]},
            {"fmr": 1e-3, "leak_rate": rate, "leak_rate_ci": [lo, hi]}]
    return {"matchers": {"synth_b": {"leakage": rows}}}


def test_the_rate_is_the_reports_at_the_fmr():
    assert leak_at(report(0.3, 0.25, 0.35), "synth_b", 1e-3) == {"rate": 0.3, "ci": [0.25, 0.35]}


def test_a_row_compares_the_two_galleries_intervals():
    def verdict(trained: tuple, new: tuple) -> str:
        reports = {"trained": report(*trained), "new": report(*new)}
        got = row(reports, "synth_b", 1e-3)
        assert got["trained"]["rate"] == trained[0] and got["new"]["rate"] == new[0]
        return got["verdict"]

    new = (0.30, 0.28, 0.32)
    assert verdict((0.40, 0.33, 0.47), new) == "above"
    assert verdict((0.20, 0.15, 0.27), new) == "below"
    assert verdict((0.33, 0.32, 0.34), new) == "overlapping"   # touching counts as overlapping
    assert verdict(new, new) == "overlapping"


def test_markdown_has_one_line_per_arm_and_matcher():
    cell = {"trained": {"rate": 0.5, "ci": [0.4, 0.6]}, "new": {"rate": 0.1, "ci": [0.05, 0.15]}, "verdict": "above"}
    text = markdown({"dp8_s0": {"synth_b": cell, "synth": cell}})
    assert "| dp8_s0 | synth_b | 0.500 [0.400, 0.600] | 0.100 [0.050, 0.150] | above |" in text
    assert len(text.strip().splitlines()) == 4


def test_an_arm_without_networks_stops_it_in_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gallery_null, "OUT", tmp_path)
    monkeypatch.setattr(gallery_null, "run_folder", lambda arm: None)
    monkeypatch.setattr(gallery_null, "data", lambda: pytest.fail("data written"))
    assert gallery_null.main() == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"arm public_only has no final networks under {tmp_path}" in err
    assert not any(tmp_path.iterdir())
