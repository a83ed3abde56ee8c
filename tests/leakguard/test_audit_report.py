"""report.json and report.html from a synthetic audit report: the files, the numbers as the tables
format them, one valid PNG per <img>, escaping, and training faces kept out unless asked for."""
import base64
import html
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")
from leakguard.audit.report import HIDDEN_TEXT, MISSING_TEXT, fmt_ratio, render_html, write_report
from leakguard.html import fmt_ci, fmt_num, fmt_pct, png_bytes

EVIL = 'arc<script>alert("x")</script> & $1'     # html and matplotlib's mathtext must take it literally
FMRS = [0.01, 0.001, 0.0001]


def _hist(rng, mean: float, sd: float, n: int) -> list:
    counts, _ = np.histogram(np.clip(rng.normal(mean, sd, n), -1, 1), bins=200, range=(-1.0, 1.0))
    return [int(c) for c in counts]


def _matcher(rng, rates, membership: bool) -> dict:
    leakage = []
    for i, (fmr, rate) in enumerate(zip(FMRS, rates)):
        chance = fmr * 9.9
        leakage.append({"fmr": fmr, "fmr_observed": fmr * 0.98, "threshold": 0.3 + 0.1 * i, "supported": i < 2,
                        "leak_rate": rate, "leak_rate_ci": [rate * 0.8, rate * 1.2], "chance_rate": chance,
                        "chance_rate_bounds": [chance, chance * 3], "ratio": rate / chance,
                        "leaking_samples": int(rate * 1000)})
    m = {"version": "v1", "embedding_dim": 128, "threshold_source": "training set (R-R pairs)",
         "rr": {"genuine": {"pairs_used": 4000, "pairs_total": 4000, "sampled": False, "mean": 0.62,
                            "histogram": _hist(rng, 0.62, 0.12, 4000)},
                "impostor": {"pairs_used": 100000, "pairs_total": 900000, "sampled": True, "mean": 0.02,
                             "histogram": _hist(rng, 0.02, 0.1, 100000)},
                "eer": 0.031},
         "rg": {"best_scores_histogram": _hist(rng, 0.3, 0.08, 1000), "mean": 0.3, "ks_vs_genuine": 0.7,
                "ks_vs_impostor": 0.9},
         "hist_edges": [float(e) for e in np.linspace(-1, 1, 201)],
         "leakage": leakage, "leak_counts_fmr": 0.001,
         "top_leakers": [{"identity": 17, "count": 9}, {"identity": 4, "count": 3}],
         "top_pairs": [], "membership": None}
    if membership:
        fpr = [0.0, 0.0, 0.005, 0.02, 0.1, 0.4, 1.0]
        tpr = [0.0, 0.1, 0.23, 0.4, 0.6, 0.85, 1.0]
        m["membership"] = {"k": 5, "score": "topk_mean", "members": 200, "nonmembers": 200,
                           "auc": 0.8123, "auc_ci": [0.7411, 0.8734],
                           "tpr_at_fpr": {"0.01": 0.23, "0.001": 0.1},
                           "tpr_at_fpr_ci": {"0.01": [0.15, 0.31], "0.001": [0.02, 0.18]},
                           "roc": {"fpr": fpr, "tpr": tpr}}
    return m


def make_report() -> tuple[dict, dict]:
    """Two matchers ('synth' with membership, EVIL without) and their leaking pairs' pixels."""
    rng = np.random.default_rng(0)
    matchers = {"synth": _matcher(rng, [0.125, 0.04, 0.0021], True), EVIL: _matcher(rng, [0.08, 0.0, 0.0], False)}
    matchers[EVIL]["leakage"][2]["ratio"] = float("inf")
    report = {"format": 1, "created": "2025-01-02T03:04:05+00:00", "leakguard_version": "0.1.0",
              "inputs": {"generated": {"source": "ImageTensor(1000 images)", "count": 1000, "seeds": "0-999",
                                       "truncation_psi": 1.0},
                         "training": {"source": "ImageFiles('train.zip', 5000 images)", "images": 5000,
                                      "identities": 500},
                         "members": {"source": "members.zip", "images": 800, "identities": 200},
                         "nonmembers": None},
              "settings": {"fmrs": FMRS, "bootstrap": 1000, "seed": 0},
              "matchers": matchers}
    images = {}
    for name, n in (("synth", 3), (EVIL, 2)):
        pairs = []
        for j in range(n):
            gen = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
            train = None if (name, j) == (EVIL, 1) else rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
            pairs.append((gen, train))
            matchers[name]["top_pairs"].append({"generated_index": 10 * j, "training_index": 100 + j,
                                                "identity": 17, "score": 0.9 - 0.1 * j})
        images[name] = {"leak_pairs": pairs}
    return report, images


@pytest.fixture(scope="module")
def example():
    report, images = make_report()
    return report, images, render_html(report, images), render_html(report, images, show_training_images=True)


def _data_uris(page: str) -> list:
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_writes_both_files_and_json_round_trips(tmp_path):
    report, images = make_report()
    json_path, html_path = write_report(tmp_path / "out", report, images)
    assert (json_path, html_path) == (tmp_path / "out" / "report.json", tmp_path / "out" / "report.html")
    text = json_path.read_text()
    assert "Infinity" not in text and "NaN" not in text  # strict JSON: jq and browsers read it
    back = json.loads(text)
    assert back["matchers"][EVIL]["leakage"][2]["ratio"] is None  # the infinite ratio, as null
    back["matchers"][EVIL]["leakage"][2]["ratio"] = float("inf")
    assert back == report
    assert "<h1>LeakGuard audit report</h1>" in html_path.read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json"]  # no temp files


def _text(page: str) -> str:
    return re.sub(r"<[^>]+>", "", page)     # intervals sit in a <span> of their own


def test_html_names_matchers_and_formats_the_numbers(example):
    _, _, page, _ = example
    assert "synth" in page and html.escape(EVIL) in page
    summary = _text(page.split("<h2>Summary</h2>")[1].split("<h2>")[0])
    for number in ("12.50% [10.00%, 15.00%]",       # synth: leak rate [CI] at FMR 0.01
                   "9.90%", "1.26",                 # its chance rate and ratio
                   "0.21% [0.17%, 0.25%] †",        # at FMR 1e-4: unsupported
                   "0.0990%",                       # chance rate at 1e-4: three significant digits
                   "0.812 [0.741, 0.873]",          # membership AUC
                   "23.00% [15.00%, 31.00%]",       # TPR at FPR 0.01
                   "10.00% [2.00%, 18.00%]",        # TPR at FPR 0.001
                   "8.00% [6.40%, 9.60%]",          # EVIL at 0.01
                   "∞", "not run"):                 # EVIL: ratio with chance 0, no membership
        assert html.escape(number) in summary, number
    assert summary.count("† FMR below 1 / impostor pairs") == 1
    for number in ("0.99% [0.99%, 2.97%]",          # chance rate [bounds] at 1e-3
                   "0.0990% [0.0990%, 0.2970%]",    # at 1e-4: an interval shares its decimals
                   "0.3000", "0.00098", "3.10%"):   # threshold, observed FMR, EER
        assert html.escape(number) in _text(page), number


def test_strings_are_escaped(example):
    _, _, page, _ = example
    assert "<script>" not in page and "alert(&quot;x&quot;)" in page and "&amp; $1" in page


def test_one_valid_png_per_img(example):
    _, _, hidden, shown = example
    plots = 1 + 2 + 1               # leak-rate bars; a histogram per matcher; one ROC (EVIL has no membership)
    for page, faces in ((hidden, 5), (shown, 5 + 4)):   # 5 generated; 4 training (one pair has none)
        assert page.count("<img") == plots + faces
        uris = _data_uris(page)
        assert len(uris) == plots + faces
        for uri in uris:
            with Image.open(io.BytesIO(base64.b64decode(uri))) as im:
                assert im.format == "PNG"
                im.verify()


def test_training_images_only_when_asked(example):
    _, images, hidden, shown = example
    training = [t for v in images.values() for _, t in v["leak_pairs"] if t is not None]
    generated = [g for v in images.values() for g, _ in v["leak_pairs"]]
    for t in training:
        assert base64.b64encode(png_bytes(t)).decode() not in hidden
        assert base64.b64encode(png_bytes(t)).decode() in shown
    assert hidden.count(html.escape(HIDDEN_TEXT)) == 5       # a box in place of each training face
    assert shown.count(html.escape(HIDDEN_TEXT)) == 0 and shown.count(MISSING_TEXT) == 1
    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(u))).convert("RGB")) for u in _data_uris(hidden)]
    faces = [d for d in decoded if d.shape == (24, 20, 3)]
    assert len(faces) == len(generated)
    assert all(any(np.array_equal(f, g) for g in generated) for f in faces)
    assert not any(np.array_equal(f, t) for f in faces for t in training)


def test_missing_optional_parts_still_render(tmp_path):
    report = {"format": 1, "matchers": {"bare": {"leakage": [{"fmr": 0.001, "leak_rate": 0.5}]}, "empty": {}}}
    _, html_path = write_report(tmp_path, report)
    page = html_path.read_text(encoding="utf-8")
    assert "bare" in page and "empty" in page and "50.00%" in page


def test_formats():
    assert fmt_pct(0.0125) == "1.25%" and fmt_pct(2.5e-6) == "0.000250%" and fmt_pct(0.0) == "0.00%"
    assert fmt_ratio(float("inf")) == "∞" and fmt_ratio(float("nan")) == "n/a" and fmt_ratio(12.34) == "12.3"
    assert fmt_ci(0.8123, [0.7411, 0.8734], fmt_num) == "0.812 [0.741, 0.873]" and fmt_num(None) == "–"


def test_png_bytes_downscales_and_checks():
    big = np.zeros((1024, 512, 3), np.uint8)
    with Image.open(io.BytesIO(png_bytes(big))) as im:
        assert im.size == (128, 256)
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((8, 8, 3), np.float32))
    report, images = make_report()
    images["synth"]["leak_pairs"][1] = (np.zeros((8, 8), np.int64), None)
    with pytest.raises(ValueError, match=r"images\['synth'\]\['leak_pairs'\]\[1\]\[0\]"):
        render_html(report, images)
