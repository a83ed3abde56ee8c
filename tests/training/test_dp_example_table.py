"""tools/dp_example_table.py: every number of an arm's row is the one its reports hold."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from dp_example_table import JUDGE, SECOND, arm_row, markdown  # noqa: E402


def leak_rows(rate: float) -> list:
    return [{"fmr": f, "leak_rate": rate * k, "leak_rate_ci": [rate * k / 2, rate * k * 2], "chance_rate": 0.1 * k,
             "supported": True} for k, f in ((3, 1e-2), (1, 1e-3))]


def audit(rate: float, auc: float | None, share: float) -> dict:
    faces_rows = [{"fmr": 1e-3, "leak_rate": rate / 2, "leak_rate_ci": [0.0, rate], "supported": True}]
    return {"matchers": {JUDGE: {"leakage": leak_rows(rate),
                                 "membership": {"auc": auc, "auc_ci": [auc - 0.03, auc + 0.03]} if auc else None},
                         SECOND: {"leakage": leak_rows(2 * rate), "membership": None}},
            "faces": {"manifold": {"fd_synthfaces": {"share": share, "share_ci": [share - 0.1, share + 0.1],
                                                     "count": int(100 * share), "mostly_not_faces": share < 0.5,
                                                     "leakage": {JUDGE: faces_rows}}}}}


FIDELITY = {"metrics": {"fd_synthfaces": {"fd_synthfaces": 12.5, "fd_synthfaces_kid": 0.004,
                                          "fd_synthfaces_kid_std": 0.001, "fd_synthfaces_precision": 0.7,
                                          "fd_synthfaces_recall": 0.4}}}


def test_a_row_is_its_reports_numbers():
    row = arm_row("nonprivate", {"audit": audit(0.04, 0.52, 0.7), "fidelity": FIDELITY}, None, 1e-3)
    assert row["leak"][JUDGE] == {"rate": 0.04, "ci": [0.02, 0.08], "chance": 0.1, "supported": True}
    assert row["leak"][SECOND]["rate"] == pytest.approx(0.08)
    assert row["auc"] == {"auc": 0.52, "ci": [0.49, 0.55]}
    assert row["faces"] == {"share": 0.7, "share_ci": [0.6, 0.7999999999999999], "count": 70,
                            "mostly_not_faces": False, "leak_rate": 0.02, "leak_rate_ci": [0.0, 0.04]}
    assert row["fidelity"] == {"extractor": "fd_synthfaces", "fd": 12.5, "kid": 0.004, "kid_std": 0.001,
                               "precision": 0.7, "recall": 0.4}


def test_the_table_marks_fakes_that_are_not_faces_and_the_null_has_no_epsilon():
    rows = [arm_row("dp8_scratch", {"audit": audit(0.0, 0.5, 0.1), "fidelity": FIDELITY}, None, 1e-3),
            arm_row("null", {"audit": audit(0.03, None, 0.9), "fidelity": None}, None, 1e-3)]
    text = markdown(rows, 1e-3)
    scratch, null = text.splitlines()[2], text.splitlines()[3]
    assert "**not faces**" in scratch and "∞ (no DP)" in scratch
    assert null.startswith("| null | — | — |") and "0.030 [0.015, 0.060]" in null


def test_a_private_evolution_row_reads_epsilon_from_the_release_beside_its_images(tmp_path):
    """A PE arm is judged on its images.zip; its ε comes from the release.pt that `leakguard pe` wrote beside it,
    and dp-accounting recomputes it from the record's mechanisms (q = 1: no subsampling)."""
    from training.checkpoint import save_networks
    from training.cli.generate import random_generator
    record = {"unit": "identity", "epsilon": 7.99, "delta": 1e-5, "sigma": 1.427, "q": 1.0,
              "mechanisms": [{"name": "pe_vote", "sigma": 1.427, "q": 1.0, "steps": 5}]}
    save_networks(tmp_path / "release.pt", {"G_ema": random_generator(32, 0)}, {"privacy": record})
    (tmp_path / "images.zip").write_bytes(b"")     # only its name is used: the release beside it
    row = arm_row("pe8", {"audit": audit(0.04, 0.5, 0.6), "fidelity": FIDELITY}, tmp_path / "images.zip", 1e-3)
    assert row["epsilon"] == 7.99 and row["delta"] == 1e-5 and row["sec_per_kimg"] is None
    assert row["epsilon_dp_accounting"] == pytest.approx(7.99, abs=0.02)
