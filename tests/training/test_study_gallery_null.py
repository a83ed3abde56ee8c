"""tools/study_gallery_null.py: per arm, the seeds' rates, their difference and its t interval, and the per-seed
verdicts, from the trials' rows."""
import math

import pytest

from leakguard.sweep.results import t_interval
from tools.study_gallery_null import REPO, by_arm, main, markdown, taken_by


def cell(trained: float, new: float, verdict: str) -> dict:
    return {"synth_b": {"trained": {"rate": trained, "ci": [trained - 0.02, trained + 0.02]},
                        "new": {"rate": new, "ci": [new - 0.02, new + 0.02]}, "verdict": verdict}}


def test_t_interval_is_the_textbook_one():
    x = [0.1, 0.3, 0.2]
    m, sd = 0.2, 0.1                      # sample sd with ddof 1
    half = 4.302652729911275 * sd / math.sqrt(3)   # t(0.975, 2)
    assert t_interval(x) == pytest.approx([m - half, m + half])
    assert t_interval([0.4]) is None                 # one seed: no interval (the public model's row)
    assert t_interval([0.4, 0.4]) == [0.4, 0.4]


def test_arms_gather_their_seeds():
    rows = {"undefended_s0": cell(0.40, 0.10, "above"), "undefended_s1": cell(0.20, 0.12, "above"),
            "undefended_s2": cell(0.11, 0.10, "overlapping"), "reg5_s0": cell(0.05, 0.09, "below"),
            "public_only": cell(0.1, 0.1, "overlapping")}
    arms = by_arm(rows, "synth_b")
    assert list(arms) == ["undefended", "reg5", "public_only"]
    u = arms["undefended"]
    assert u["seeds"] == 3 and u["verdicts"] == {"above": 2, "overlapping": 1, "below": 0}
    assert u["trained"][0] == pytest.approx(0.71 / 3) and u["new"][0] == pytest.approx(0.32 / 3)
    assert u["difference"][0] == pytest.approx(0.13) and u["difference"][1] == pytest.approx(t_interval([0.3, 0.08,
                                                                                                      0.01]))
    text = markdown({"synth_b": arms})
    assert "| public_only | 1 | 10.0% | 10.0% | +0.0 | 0 / 1 / 0 |" in text   # one seed: no t interval
    assert "| undefended | 3 | 23.7% [" in text and "| 2 / 1 / 0 |" in text and "| +13.0 [" in text


def test_a_new_gallery_must_hold_new_people(capsys):
    assert taken_by(range(7000, 7050)) is None
    assert taken_by(range(10, 60)) == "training people"
    assert taken_by(range(4990, 5040)) == "null's people"
    assert main(["--new-offset", "980"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--new-offset 980: people 980..1029 include the non-members" in err
    assert not (REPO / "runs" / "study" / "new_gallery_980.zip").exists()  # nothing written
