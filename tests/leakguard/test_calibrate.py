"""Matcher calibration against a brute-force oracle: every pair enumerated by two loops, every rate
counted one score at a time, every threshold found by trying all candidates. Scores of embeddings
with entries +-1/4 in 16 dimensions are multiples of 1/8, exact in float32 whatever the summation
order, so pair scores can be compared exactly, and they tie a lot."""
import json
import math
import statistics

import numpy as np
import pytest
import torch

from leakguard.matchers import calibrate as calibrate_module
from leakguard.matchers.calibrate import (Calibration, PairScores, calibrate, calibrate_scores,
                                          calibration_path, load_calibration, pair_scores,
                                          save_calibration, why_unsupported)

FMRS = (0.1, 0.05, 1e-2, 1e-3)


def dyadic_set(n_ids=6, per_id=(7, 2, 5, 9, 3, 6), flips=3, seed=0):
    """Unit rows of +-1/4 in 16 dims: each identity a random sign pattern, each image `flips` signs
    flipped at random (some images repeat: scores of exactly 1)."""
    rng = np.random.default_rng(seed)
    rows, ids = [], []
    for k in range(n_ids):
        base = rng.choice([-0.25, 0.25], 16)
        for _ in range(per_id[k]):
            x = base.copy()
            x[rng.choice(16, rng.integers(0, flips + 1), replace=False)] *= -1
            rows.append(x)
            ids.append(f"id{k}")
    return np.array(rows, np.float32), np.array(ids)


def clustered_set(n_ids, per_id, d=32, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_ids, d, generator=g)
    e = centres.repeat_interleave(per_id, 0) + spread * torch.randn(n_ids * per_id, d, generator=g)
    return torch.nn.functional.normalize(e, dim=1), torch.arange(n_ids).repeat_interleave(per_id)


# --- the oracle ------------------------------------------------------------------------------------

def brute_pairs(e, ids):
    gen, imp = [], []
    for i in range(len(e)):
        for j in range(i + 1, len(e)):
            s = float(np.float32(np.dot(e[i].astype(np.float64), e[j].astype(np.float64))))
            (gen if ids[i] == ids[j] else imp).append(s)
    return gen, imp


def f32_above(x):
    return float(np.nextafter(np.float32(x), np.float32(np.inf)))


def fmr_of(imp, t):
    return sum(s >= t for s in imp) / len(imp)


def fnmr_of(gen, t):
    return sum(s < t for s in gen) / len(gen)


def brute_threshold(imp, fmr):
    """The smallest float32 t with FMR(t) <= fmr, over every score and the float32 just above it."""
    candidates = sorted(set(imp) | {f32_above(s) for s in imp})
    return min(t for t in candidates if fmr_of(imp, t) <= fmr)


def brute_eer(gen, imp):
    """Linear scan of all candidates for the last with FMR >= FNMR, then the ROC interpolation."""
    cands = sorted(set(gen) | set(imp)) + [f32_above(max(gen + imp))]
    k = max(i for i, t in enumerate(cands) if fmr_of(imp, t) >= fnmr_of(gen, t))
    t1, t2 = cands[k], cands[k + 1]
    a1, b1, a2, b2 = fmr_of(imp, t1), fnmr_of(gen, t1), fmr_of(imp, t2), fnmr_of(gen, t2)
    if a1 == b1:
        return a1, t1
    lam = (a1 - b1) / ((a1 - b1) - (a2 - b2))
    return a1 + lam * (a2 - a1), t1 + lam * (t2 - t1)


def brute_histogram(scores, bins):
    edges = np.linspace(-1.0, 1.0, bins + 1)
    counts = [0] * bins
    for s in scores:
        s = min(max(s, -1.0), 1.0)
        i = next(i for i in range(bins) if edges[i] <= s < edges[i + 1] or (i == bins - 1 and s == 1.0))
        counts[i] += 1
    return counts


def check_against_oracle(cal, gen, imp, fmrs, bins):
    for summary, scores in ((cal.genuine, gen), (cal.impostor, imp)):
        assert summary.pairs_used == len(scores)
        assert summary.min == min(scores) and summary.max == max(scores)
        assert summary.median == pytest.approx(statistics.median(scores), abs=1e-7)
        assert summary.mean == pytest.approx(statistics.fmean(scores), rel=1e-9, abs=1e-12)
        assert summary.std == pytest.approx(statistics.pstdev(scores), rel=1e-7, abs=1e-9)
        assert summary.histogram == brute_histogram(scores, bins)
    for p, fmr in zip(cal.points, fmrs):
        t = brute_threshold(imp, fmr)
        assert p.fmr == fmr and p.threshold == t
        assert p.fmr_observed == fmr_of(imp, t) <= fmr
        assert p.tar == sum(s >= t for s in gen) / len(gen)
        allowed = max(k for k in range(len(imp) + 1) if k / len(imp) <= fmr)   # false matches the FMR allows
        assert p.supported == (allowed >= 10 and cal.num_identities >= 30)
        assert (p.why_unsupported == "") == p.supported
    eer, t_eer = brute_eer(gen, imp)
    assert cal.eer == pytest.approx(eer, rel=1e-12, abs=1e-15)
    assert cal.eer_threshold == pytest.approx(t_eer, rel=1e-12, abs=1e-15)


# --- exact mode ------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_rows", [1, 7, 100])
def test_exact_calibration_equals_brute_force_with_ties_and_chunk_edges(chunk_rows):
    e, ids = dyadic_set()                                           # N = 32
    gen, imp = brute_pairs(e, ids)
    assert len(set(imp)) < len(imp) / 10                            # heavily tied
    cal = calibrate(e, ids, matcher="dyadic", fmrs=FMRS, bins=16, chunk_rows=chunk_rows)
    assert sorted(pair_scores(e, ids, chunk_rows=chunk_rows).impostor.tolist()) == sorted(imp)
    assert cal.mode == "exact" and cal.seed is None and cal.matcher == "dyadic"
    assert (cal.num_images, cal.num_identities, cal.embedding_dim, cal.bins) == (32, 6, 16, 16)
    n_gen = sum(c * (c - 1) // 2 for c in (7, 2, 5, 9, 3, 6))
    assert cal.genuine.pairs_total == n_gen and cal.impostor.pairs_total == 32 * 31 // 2 - n_gen
    assert not cal.genuine.sampled and not cal.impostor.sampled
    check_against_oracle(cal, gen, imp, FMRS, 16)


def test_ties_are_never_split_so_the_observed_fmr_can_be_lower():
    e, ids = dyadic_set()
    _, imp = brute_pairs(e, ids)
    cal = calibrate(e, ids, fmrs=FMRS, bins=16, chunk_rows=5)
    split = [p for p in cal.points if p.fmr_observed < p.fmr and p.fmr * len(imp) >= 1]
    assert split, "the tied set should force an observed FMR below a target"
    for p in cal.points:
        d = max(s for s in imp if s < p.threshold)                  # the largest non-matching impostor
        assert p.threshold == f32_above(d) and d in imp             # the whole tie at d lies below t


def test_fmr_below_one_over_impostor_pairs_is_flagged_not_extrapolated():
    e, ids = dyadic_set()
    _, imp = brute_pairs(e, ids)                                    # 404 impostor pairs: 1e-3 < 1 / 404
    cal = calibrate(e, ids, fmrs=FMRS, bins=16)
    p = cal.point(1e-3)
    assert not p.supported and p.fmr_observed == 0 and p.threshold == f32_above(max(imp))
    assert cal.point(1e-2).fmr_observed > 0  # resolved by the data, though 6 people cannot support it
    unresolved = [w for w in cal.warnings if "cannot resolve" in w]
    assert len(unresolved) == 1 and "0.001" in unresolved[0] and f"1 / {len(imp)}" in unresolved[0]


def test_exact_calibration_of_float_embeddings_matches_brute_force():
    e, ids = clustered_set(8, 5, seed=1)                            # torch inputs, ids as a tensor
    gen, imp = brute_pairs(e.numpy(), ids.numpy())
    cal = calibrate(e, ids, fmrs=FMRS, bins=50, chunk_rows=3)
    ps = pair_scores(e, ids, chunk_rows=3)
    np.testing.assert_allclose(np.sort(ps.genuine), sorted(gen), atol=1e-6)
    np.testing.assert_allclose(np.sort(ps.impostor), sorted(imp), atol=1e-6)
    # the oracle on the matcher's own float32 scores (BLAS rounding may differ from float64 in the last bit)
    check_against_oracle(cal, ps.genuine.tolist(), ps.impostor.tolist(), FMRS, 50)


@pytest.mark.parametrize("seed", range(6))
def test_score_statistics_equal_brute_force_on_tied_random_scores(seed):
    rng = np.random.default_rng(seed)
    m, g = int(rng.integers(5, 400)), int(rng.integers(2, 60))
    step = [1 / 8, 1 / 64, 1 / 1024][seed % 3]                       # coarse steps: many ties
    imp = np.round(rng.normal(0, 0.3, m) / step) * step
    gen = np.round(rng.normal(0.4 * (seed % 2), 0.3, g) / step) * step
    imp, gen = np.clip(imp, -1, 1).astype(np.float32), np.clip(gen, -1, 1).astype(np.float32)
    fmrs = (0.5, 0.2, 0.1, 0.05, 1e-2, 1e-3)
    stats = calibrate_scores(PairScores(gen, imp, 2, g, m, False, False), fmrs=fmrs, bins=20)
    cal = Calibration(matcher="", num_images=0, num_identities=2, embedding_dim=1, mode="exact", seed=None, **stats)
    check_against_oracle(cal, gen.tolist(), imp.tolist(), fmrs, 20)


def test_eer_by_hand():
    def eer(gen, imp):
        s = calibrate_scores(PairScores(np.float32(gen), np.float32(imp), 2, len(gen), len(imp), False, False))
        return s["eer"], s["eer_threshold"]
    # FMR, FNMR at 0.5: 2/3, 1/2; at 0.6: 1/3, 1/2 -> halfway: EER 1/2 at threshold 0.55
    e, t = eer([0.4, 0.8], [0.0, 0.5, 0.6])
    assert e == pytest.approx(0.5, abs=1e-12) and t == pytest.approx(0.5 + (float(np.float32(0.6)) - 0.5) / 2)
    assert eer([0.5, 0.75], [0.0, 0.25]) == (0.0, 0.5)               # separated: the lowest perfect threshold
    assert eer([0.25, 0.75], [0.0, 0.5]) == (0.5, 0.5)               # FMR = FNMR at a score


def test_histograms_count_every_score_including_rounding_past_one():
    gen = np.float32([1.0, np.nextafter(np.float32(1), np.float32(2)), 0.5, 0.0])
    imp = np.float32([-1.0, np.nextafter(np.float32(-1), np.float32(-2)), -0.5, 0.25])
    s = calibrate_scores(PairScores(gen, imp, 2, 4, 4, False, False), bins=4)
    assert s["genuine"].histogram == [0, 0, 1, 3]                   # bins [-1,-.5) [-.5,0) [0,.5) [.5,1]
    assert s["impostor"].histogram == [2, 1, 1, 0]
    assert s["genuine"].max > 1                                     # stats keep the unclipped scores


# --- sampled mode ----------------------------------------------------------------------------------

def test_sampled_mode_states_counts_and_is_reproducible_with_the_seed():
    e, ids = clustered_set(20, 6, seed=2)                           # 300 genuine, 6840 impostor pairs
    a = calibrate(e, ids, max_pairs=1000, sample_pairs=2500, seed=7)
    assert a.mode == "sampled" and a.seed == 7
    assert a.impostor.sampled and a.impostor.pairs_used == 2500 and a.impostor.pairs_total == 6840
    assert not a.genuine.sampled and a.genuine.pairs_used == a.genuine.pairs_total == 300
    assert sum(a.impostor.histogram) == 2500
    assert "seed 7" in a.warnings[0] and "2500 of 6840 impostor" in a.warnings[0]
    assert calibrate(e, ids, max_pairs=1000, sample_pairs=2500, seed=7).to_json() == a.to_json()
    assert calibrate(e, ids, max_pairs=1000, sample_pairs=2500, seed=8).to_json() != a.to_json()
    b = calibrate(e, ids, max_pairs=200, seed=7)                    # both kinds sampled, max_pairs of each
    assert b.genuine.sampled and b.impostor.sampled and b.genuine.pairs_used == b.impostor.pairs_used == 200


@pytest.mark.parametrize("dense_gain", [0, 10 ** 9])              # gather rows / pick from the score matrix
def test_sampled_pair_scores_equal_their_dot_products(monkeypatch, dense_gain):
    monkeypatch.setattr(calibrate_module, "DENSE_GAIN", dense_gain)
    monkeypatch.setattr(calibrate_module, "GATHER_ELEMENTS", 16 * 5)  # 5 pairs at a time in 16 dims
    e, _ = clustered_set(4, 5, d=16)                                 # N = 20
    e = e.numpy()
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 20, 57), rng.integers(0, 20, 57)
    i[:4], j[:4] = [0, 2, 3, 19], [19, 3, 2, 0]                      # chunk edges of chunk_rows=3, both orders
    got = calibrate_module.dot_products(e, i, j, chunk_rows=3)
    want = [np.dot(e[a].astype(np.float64), e[b].astype(np.float64)) for a, b in zip(i, j)]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("dense_gain", [0, 10 ** 9])
def test_sampled_pairs_are_of_the_right_kind_and_uniform_over_pairs(monkeypatch, dense_gain):
    monkeypatch.setattr(calibrate_module, "DENSE_GAIN", dense_gain)
    e, ids = dyadic_set()
    gen, imp = brute_pairs(e, ids)
    ps = pair_scores(e, ids, max_pairs=10, sample_pairs=60_000, seed=0)
    assert ps.genuine_sampled and ps.impostor_sampled
    assert set(ps.genuine.tolist()) <= set(gen) and set(ps.impostor.tolist()) <= set(imp)
    for sampled, exact in ((ps.genuine, gen), (ps.impostor, imp)):
        values, counts = np.unique(exact, return_counts=True)
        p = counts / len(exact)                                     # each value's share of the pairs
        got = np.array([(sampled == v).sum() for v in values]) / len(sampled)
        assert np.all(np.abs(got - p) <= 5 * np.sqrt(p * (1 - p) / len(sampled)) + 1e-12)


def test_genuine_sampling_weights_identities_by_their_pairs():
    # identity 0: ten identical images (45 pairs scoring 1); identity 1: two orthogonal images (1 pair, 0)
    e = np.zeros([14, 4], np.float32)
    e[:10, 0] = 1
    e[10, 1], e[11, 2], e[12, 3], e[13, 3] = 1, 1, 1, -1
    ids = [0] * 10 + [1, 1, 2, 2]                                   # identity 2: one pair scoring -1
    ps = pair_scores(e, ids, max_pairs=40, sample_pairs=40_000, seed=3)
    share = np.array([(ps.genuine == v).mean() for v in (1, 0, -1)])
    np.testing.assert_allclose(share, [45 / 47, 1 / 47, 1 / 47], atol=0.006)


def test_sampled_calibration_is_close_to_exact_on_a_large_set():
    e, ids = clustered_set(40, 8, spread=1.2, seed=3)               # 1120 genuine, 49920 impostor pairs
    exact = calibrate(e, ids, fmrs=(1e-1, 1e-2))
    sampled = calibrate(e, ids, fmrs=(1e-1, 1e-2), max_pairs=20_000, seed=0)
    assert exact.mode == "exact" and sampled.mode == "sampled" and not sampled.genuine.sampled
    imp = pair_scores(e, ids).impostor
    for q in sampled.points:                                        # its threshold's FMR over all pairs
        fmr = (imp >= np.float32(q.threshold)).mean()
        assert abs(fmr - q.fmr) < 4.5 * math.sqrt(q.fmr * (1 - q.fmr) / 20_000)
    assert sampled.eer == pytest.approx(exact.eer, abs=0.01)
    assert sampled.impostor.mean == pytest.approx(exact.impostor.mean, abs=0.005)
    h, g = np.array(exact.impostor.histogram) / 49920, np.array(sampled.impostor.histogram) / 20_000
    assert 0.5 * np.abs(h - g).sum() < 0.05                         # total variation distance


# --- files -----------------------------------------------------------------------------------------

def test_json_round_trip_and_atomic_save_beside_the_weights(tmp_path):
    e, ids = dyadic_set()
    cal = calibrate(e, ids, matcher="dyadic@v1", fmrs=FMRS, bins=16)
    assert Calibration.from_json(cal.to_json()) == cal
    weights = tmp_path / "ms1mv3_r50" / "backbone.pth"
    path = calibration_path(weights)
    assert path == tmp_path / "ms1mv3_r50" / "backbone.pth.calibration.json"
    assert save_calibration(path, cal) == path
    assert load_calibration(path) == cal
    other = calibrate(e, ids, fmrs=(0.2,), bins=4)
    save_calibration(path, other)                                   # overwrites, leaves no temporary file
    assert load_calibration(path) == other
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert json.loads(path.read_text())["points"][0]["fmr"] == 0.2


def test_load_errors_name_the_file_and_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_calibration(tmp_path / "nowhere.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_calibration(bad)
    e, ids = dyadic_set()
    d = json.loads(calibrate(e, ids, bins=4).to_json())
    d["thresholds"] = 1
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"bad\.json.*unknown keys \['thresholds'\]"):
        load_calibration(bad)
    d = json.loads(calibrate(e, ids, bins=4).to_json())
    del d["points"][0]["tar"]
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"points\[0\].*missing keys \['tar'\]"):
        load_calibration(bad)
    d["format"] = 99
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="format 99"):
        load_calibration(bad)


# --- bad input -------------------------------------------------------------------------------------

def test_bad_inputs_are_named():
    e, ids = dyadic_set()
    with pytest.raises(ValueError, match="at least 2 identities"):
        calibrate(e, ["a"] * len(e))
    with pytest.raises(ValueError, match="no genuine pairs"):
        calibrate(e, np.arange(len(e)))
    with pytest.raises(ValueError, match="32 embeddings, ids of shape \\(31,\\)"):
        calibrate(e, ids[:31])
    nan = e.copy()
    nan[[3, 9], 0] = np.nan
    with pytest.raises(ValueError, match=r"2 embedding rows hold NaN.*\[3, 9\]"):
        calibrate(nan, ids)
    with pytest.raises(ValueError, match="L2-normalised.*row 0 has norm 2"):
        calibrate(e * 2, ids)
    with pytest.raises(ValueError, match=r"\[N, D\] with N >= 2"):
        calibrate(e[0], ids[:1])
    with pytest.raises(ValueError, match="target FMR 0 must be in"):
        calibrate(e, ids, fmrs=(0,))
    with pytest.raises(KeyError, match="calibrated FMRs: 0.01, 0.001, 0.0001"):
        calibrate(e, ids).point(0.05)
    assert math.isfinite(calibrate(e, ids).threshold_at(1e-2))


def test_support_needs_ten_false_matches_from_thirty_people():
    # The rule, checked against its statement: K = floor(f * M) >= 10 and >= 30 identities.
    assert why_unsupported(1e-2, 1000, 30) == ""
    assert why_unsupported(1e-2, 999, 30) == "FMR 0.01 is not supported by 999 impostor pairs (it needs 1,000, 10 / FMR)"
    assert why_unsupported(1e-3, 10_000, 29) == "FMR 0.001 is not supported by 29 identities (it needs 30)"
    assert why_unsupported(1e-4, 160, 5) == ("FMR 0.0001 is not supported by 160 impostor pairs (it needs 100,000, "
                                             "10 / FMR) and 5 identities (it needs 30)")
    rng = np.random.default_rng(0)
    e = rng.normal(size=[160, 8])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    cal = calibrate(e, np.repeat(np.arange(40), 4), fmrs=(1e-2, 1e-3))   # 12,480 impostor pairs of 40 people
    assert [p.supported for p in cal.points] == [True, True]
    few = calibrate(e[:20], np.repeat(np.arange(5), 4), fmrs=(1e-2,))    # 5 people, as in issue 12
    assert not few.points[0].supported and "5 identities" in few.points[0].why_unsupported
    assert any("5 identities" in w for w in few.warnings)


def test_threshold_bootstrap_over_identities_equals_copying_the_drawn_people():
    """Oracle: each replicate's threshold equals calibrate() on a data set built by copying in the
    drawn people's images (a person drawn twice stays one identity)."""
    from leakguard.matchers.threshold_ci import (bootstrap_thresholds, impostor_pairs, threshold_intervals,
                                                 with_threshold_intervals)
    e, ids = dyadic_set()
    labels = np.unique(ids, return_inverse=True)[1]
    fmrs = (0.3, 0.1, 0.02)
    got = bootstrap_thresholds(impostor_pairs(e, ids), fmrs, resamples=12, seed=3)
    rng = np.random.default_rng(3)
    k = labels.max() + 1
    for r in range(12):
        w = rng.multinomial(k, np.full(k, 1.0 / k))
        rows = [i for person in range(k) for _ in range(w[person]) for i in np.flatnonzero(labels == person)]
        if len(set(labels[rows])) < 2:
            assert np.isnan(got[r]).all()
            continue
        cal = calibrate(e[rows], labels[rows], fmrs=fmrs, bins=4)
        assert got[r].tolist() == [p.threshold for p in cal.points], r
    ci = threshold_intervals(e, ids, fmrs, resamples=50)
    assert all(np.isfinite(ci[f]).all() and ci[f][0] <= ci[f][1] for f in fmrs)
    cal = with_threshold_intervals(calibrate(e, ids, fmrs=fmrs, bins=4), e, ids)
    assert cal.points[0].threshold_ci == ci[0.3]
    assert Calibration.from_json(cal.to_json()).points[0].threshold_ci == ci[0.3]   # kept in the file
    assert threshold_intervals(e, ids, fmrs, max_pairs=10) is None   # too many pairs: no interval, not a guess
