"""Exact search against brute force: the score s checked against math.fsum (the correctly rounded dot
product) and against dyadic rows whose products and sums are exact in any order; the search checked
against every pair scored and a Python sort by (-score, index), over chunk sizes that do not divide
M or N, duplicated bank rows (ties), and fast scores perturbed adversarially within the error bound."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from leakguard.audit import search
from leakguard.audit.search import (TopK, chunk_sizes, exact_scores, fast_error_bound, identity_centroids,
                                    topk_cosine, topk_identities)


def unit(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def with_duplicates(b, seed):
    """b with some rows repeated (exact ties) at scattered positions."""
    g = torch.Generator().manual_seed(seed)
    extra = b[torch.randint(0, len(b), (len(b) // 3,), generator=g)]
    out = torch.cat([b, extra, b[:3]])
    return out[torch.randperm(len(out), generator=g)]


# --- the oracle ------------------------------------------------------------------------------------

def fsum_score(q, b):
    """The correctly rounded float32 dot product of two float32 rows."""
    return np.float32(math.fsum(float(x) * float(y) for x, y in zip(q.tolist(), b.tolist())))


def all_scores(q, b):
    """[M, N] s of every pair, scored one query at a time."""
    return torch.stack([exact_scores(q[i:i + 1], b, torch.zeros(len(b), dtype=torch.int64), torch.arange(len(b)))
                        for i in range(len(q))])


def brute_topk(s, k, labels=None):
    """Per row of s [M, N], the k best (score, index) by score descending then the lower index."""
    scores, indices = [], []
    for row in s.tolist():
        best = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        scores.append([row[j] for j in best])
        indices.append(best)
    return torch.tensor(scores, dtype=torch.float32), torch.tensor(indices, dtype=torch.int64)


def brute_identities(s, ids, k):
    """Per row of s [M, N], the k best identities by max score over their images, ties by the lower id."""
    uids = sorted(set(ids.tolist()))
    per_id = torch.stack([s[:, ids == u].max(dim=1).values for u in uids], dim=1)   # [M, K]
    v, i = brute_topk(per_id, k)
    return v, torch.tensor(uids)[i]


def assert_same(got: TopK, want):
    assert got.scores.dtype == torch.float32 and got.indices.dtype == torch.int64
    assert torch.equal(got.indices, want[1])
    assert torch.equal(got.scores, want[0])


# --- the score -------------------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 37, 64])
def test_exact_scores_are_the_correctly_rounded_dot_product(d):
    q, b = unit(40, d, 1), unit(50, d, 2)
    i, j = torch.randint(0, 40, (500,)), torch.randint(0, 50, (500,))
    got = exact_scores(q, b, i, j).numpy()
    want = np.array([fsum_score(q[a], b[c]) for a, c in zip(i.tolist(), j.tolist())])
    assert np.array_equal(got, want)


def test_exact_scores_do_not_depend_on_the_batch():
    q, b = unit(30, 48, 3), unit(30, 48, 4)
    i, j = torch.randint(0, 30, (300,)), torch.randint(0, 30, (300,))
    batch = exact_scores(q, b, i, j)
    tiny = exact_scores(q, b, i, j, memory_bytes=1)              # one pair at a time
    alone = torch.stack([exact_scores(q[a:a + 1], b[c:c + 1], [0], [0])[0] for a, c in zip(i.tolist(), j.tolist())])
    assert torch.equal(batch, tiny) and torch.equal(batch, alone)


def test_exact_scores_on_dyadic_rows_equal_float64_matmul():
    """Entries +-1/4 in 16 dims: every score is a multiple of 1/8, exact whatever the order."""
    rng = np.random.default_rng(0)
    q = rng.choice([-0.25, 0.25], (20, 16)).astype(np.float32)
    b = rng.choice([-0.25, 0.25], (25, 16)).astype(np.float32)
    i, j = np.meshgrid(np.arange(20), np.arange(25), indexing="ij")
    got = exact_scores(q, b, i.ravel(), j.ravel()).numpy().reshape(20, 25)
    assert np.array_equal(got, (q.astype(np.float64) @ b.T.astype(np.float64)).astype(np.float32))


def test_float32_matmul_depends_on_the_chunk_shape_but_stays_in_the_bound():
    """Why the search rescored: here the BLAS may give one pair different float32 scores in different
    chunk shapes; all of them stay within fast_error_bound of s."""
    q, b = unit(300, 512, 5), unit(400, 512, 6)
    full = (q @ b.T)[:20]
    rows = torch.cat([q[i:i + 1] @ b.T for i in range(20)])       # matrix-vector shapes
    s = all_scores(q[:20], b)
    eps = fast_error_bound(512, 1.0 + 1e-6, 1.0 + 1e-6)
    for x in (full, rows):
        assert (x - s).abs().max().item() <= eps


# --- top k of images -------------------------------------------------------------------------------

@pytest.mark.parametrize("k,query_chunk,bank_chunk,spare", [
    (1, 7, 11, 8), (1, 1, 1, 0), (3, 13, 29, 0), (5, 64, 1000, 2), (4, None, None, 8), (12, 5, 17, 1)])
def test_topk_equals_brute_force(k, query_chunk, bank_chunk, spare):
    q = unit(37, 24, 10)
    b = with_duplicates(unit(61, 24, 11), 12)                     # 84 rows, many exact ties
    b[5] = q[3]                                                   # a score of exactly the query's norm
    got = topk_cosine(q, b, k, query_chunk=query_chunk, bank_chunk=bank_chunk, spare=spare)
    assert_same(got, brute_topk(all_scores(q, b), k))


def test_topk_of_numpy_input_and_k_equal_to_n():
    q, b = unit(9, 8, 13), unit(6, 8, 14)
    got = topk_cosine(q.numpy(), b.numpy(), k=6, bank_chunk=4)
    assert_same(got, brute_topk(all_scores(q, b), 6))


def test_many_ties_take_the_rescan_and_stay_exact(monkeypatch):
    """Every bank row a copy of one of two rows: more ties than the L kept candidates, so the bank is
    scanned again for those queries; the lower indices must win."""
    q = unit(10, 16, 15)
    base = unit(2, 16, 16)
    b = base[torch.tensor([0, 1] * 20 + [1, 1, 0])]
    calls = []
    rescan = search._rescan
    monkeypatch.setattr(search, "_rescan", lambda *a, **kw: calls.append(1) or rescan(*a, **kw))
    got = topk_cosine(q, b, k=3, query_chunk=4, bank_chunk=7, spare=1)
    assert calls
    assert_same(got, brute_topk(all_scores(q, b), 3))


def near_tie_data():
    """Queries and bank rows a hair apart (1e-6): their scores differ by far less than eps."""
    g = torch.Generator().manual_seed(17)
    base = unit(3, 32, 18)
    b = F.normalize(base.repeat(20, 1) + 1e-6 * torch.randn(60, 32, generator=g), dim=1)
    q = F.normalize(base[torch.tensor([0, 1, 2, 0, 1])] + 1e-6 * torch.randn(5, 32, generator=g), dim=1)
    return q, b


def noisy_fast(eps, scale):
    """Fast scores off from s by up to scale x eps, at random: the worst a BLAS may do when scale < 1."""
    g = torch.Generator().manual_seed(19)

    def fast(q, b, out=None):
        s = q.double() @ b.double().T
        return (s + scale * eps * (2 * torch.rand(s.shape, generator=g, dtype=torch.float64) - 1)).float()
    return fast


@pytest.mark.parametrize("spare", [0, 3, 40])
def test_fast_scores_off_within_the_bound_still_give_the_exact_answer(monkeypatch, spare):
    q, b = near_tie_data()
    eps = fast_error_bound(32, 1 + 1e-6, 1 + 1e-6)
    want = brute_topk(all_scores(q, b), 4)
    monkeypatch.setattr(search, "_fast_scores", noisy_fast(eps, 0.9))
    assert_same(topk_cosine(q, b, k=4, query_chunk=2, bank_chunk=9, spare=spare), want)


def test_near_ties_need_the_margin(monkeypatch):
    """The control: with no margin the same noisy fast scores give a wrong answer, so the data above
    does exercise the margin."""
    q, b = near_tie_data()
    eps = fast_error_bound(32, 1 + 1e-6, 1 + 1e-6)
    want = brute_topk(all_scores(q, b), 4)
    monkeypatch.setattr(search, "_fast_scores", noisy_fast(eps, 0.9))
    monkeypatch.setattr(search, "fast_error_bound", lambda *a, **kw: 0.0)
    got = topk_cosine(q, b, k=4, query_chunk=2, bank_chunk=9, spare=0)
    assert not torch.equal(got.indices, want[1])


@pytest.fixture
def restore_matmul_precision():
    backends = [torch.backends.cuda.matmul, torch.backends.mkldnn.matmul]
    old = torch.get_float32_matmul_precision(), [x.fp32_precision for x in backends]
    yield
    torch.set_float32_matmul_precision(old[0])
    for x, v in zip(backends, old[1]):
        x.fp32_precision = v


def test_reduced_precision_matmul_widens_the_margin(restore_matmul_precision):
    """TF32 and bfloat16 round the inputs to 11 and 8 bits: the bound must cover twice that."""
    ieee = fast_error_bound(512, 1.0, 1.0)
    assert 512 * 2.0 ** -24 < ieee < 1.01 * 513 * 2.0 ** -24
    torch.set_float32_matmul_precision("high")
    assert fast_error_bound(512, 1.0, 1.0) > 2 * 2.0 ** -11 + ieee * 0.99
    torch.set_float32_matmul_precision("medium")
    assert fast_error_bound(512, 1.0, 1.0) > 2 * 2.0 ** -8 + ieee * 0.99


def test_chunk_sizes_fit_the_memory_budget():
    for m, n, mem in [(10_000, 1_000_000, 1 << 30), (5, 7, 1 << 30), (10_000, 1_000_000, 1000), (3, 10**6, 64)]:
        mq, nb = chunk_sizes(m, n, mem)
        assert 1 <= mq <= m and 1 <= nb <= n
        assert mq * nb * 4 <= max(mem // 2, 4)


# --- top k of identities ---------------------------------------------------------------------------

@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("k,bank_chunk,spare", [(1, 5, 0), (3, 11, 1), (6, 1000, 8), (2, 1, 0)])
def test_identities_by_max_equal_a_loop(grouped, k, bank_chunk, spare):
    q = unit(23, 16, 20)
    b = with_duplicates(unit(50, 16, 21), 22)
    ids = torch.randint(0, 9, (len(b),), generator=torch.Generator().manual_seed(23)) * 7 - 20   # negative ids too
    if grouped:
        order = torch.argsort(ids, stable=True)
        b, ids = b[order], ids[order]
    got = topk_identities(q, b, ids, k, query_chunk=6, bank_chunk=bank_chunk, spare=spare)
    assert_same(got, brute_identities(all_scores(q, b), ids, k))


def test_identities_by_max_with_near_ties(monkeypatch):
    q, b = near_tie_data()
    ids = torch.arange(len(b)) % 7
    want = brute_identities(all_scores(q, b), ids, 3)
    monkeypatch.setattr(search, "_fast_scores", noisy_fast(fast_error_bound(32, 1 + 1e-6, 1 + 1e-6), 0.9))
    assert_same(topk_identities(q, b, ids, 3, query_chunk=2, bank_chunk=8, spare=0), want)


def test_identities_by_centroid_equal_a_loop():
    q = unit(15, 16, 24)
    b = unit(40, 16, 25)
    ids = torch.arange(40) % 6 + 100
    uids, c = identity_centroids(b, ids)
    assert torch.equal(uids, torch.arange(100, 106))
    for u, row in zip(uids.tolist(), c):
        mean = b[ids == u].double().mean(0)
        assert torch.allclose(row.double(), mean / mean.norm(), atol=1e-7)
    got = topk_identities(q, b, ids, 4, reduce="centroid", bank_chunk=4, query_chunk=4)
    v, i = brute_topk(all_scores(q, c), 4)
    assert_same(got, (v, uids[i]))


# --- bad inputs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("queries,bank,k,match", [
    (unit(3, 8, 0), unit(4, 8, 1), 5, "k=5 exceeds the 4 bank rows"),
    (unit(3, 8, 0), unit(4, 8, 1), 0, "k=0 must be an integer >= 1"),
    (torch.zeros(0, 8), unit(4, 8, 1), 1, "queries of shape"),
    (unit(3, 8, 0), torch.zeros(0, 8), 1, "bank of shape"),
    (unit(3, 8, 0), unit(4, 9, 1), 1, "D=8 but the bank has D=9"),
    (2 * unit(3, 8, 0), unit(4, 8, 1), 1, "queries must be L2-normalised rows"),
    (unit(3, 8, 0), torch.full((4, 8), float("nan")), 1, "4 rows of bank hold NaN"),
    (unit(3, 8, 0), torch.ones(4, 8, dtype=torch.int64), 1, "expected float bank"),
    (unit(3, 8, 0)[0], unit(4, 8, 1), 1, "queries of shape"),
])
def test_bad_inputs_name_the_problem(queries, bank, k, match):
    with pytest.raises(ValueError, match=match):
        topk_cosine(queries, bank, k)


@pytest.mark.parametrize("kwargs,match", [
    (dict(query_chunk=0), "query_chunk=0 must be an integer >= 1"),
    (dict(bank_chunk=2.5), "bank_chunk=2.5 must be an integer >= 1"),
    (dict(spare=-1), "spare=-1 must be an integer >= 0"),
    (dict(memory_bytes=0), "memory_bytes=0 must be >= 1"),
])
def test_bad_chunking_names_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        topk_cosine(unit(3, 8, 0), unit(4, 8, 1), **kwargs)


def test_bad_identity_inputs_name_the_problem():
    q, b = unit(3, 8, 0), unit(4, 8, 1)
    with pytest.raises(ValueError, match="one identity id per bank row: 4 rows"):
        topk_identities(q, b, torch.arange(3))
    with pytest.raises(ValueError, match="identity ids must be integers"):
        topk_identities(q, b, torch.zeros(4))
    with pytest.raises(ValueError, match="k=3 exceeds the 2 identities"):
        topk_identities(q, b, torch.tensor([0, 1, 0, 1]), k=3)
    with pytest.raises(ValueError, match="reduce='mean'; valid: max, centroid"):
        topk_identities(q, b, torch.arange(4), reduce="mean")
    with pytest.raises(ValueError, match="identity 7 has a zero mean"):
        topk_identities(q, torch.cat([b[:1], -b[:1]]), torch.tensor([7, 7]), reduce="centroid")


# --- CUDA ------------------------------------------------------------------------------------------

@pytest.mark.cuda
def test_cuda_gives_the_cpu_answer_bit_for_bit():
    q, b = unit(300, 64, 30), with_duplicates(unit(2000, 64, 31), 32)
    ids = torch.arange(len(b)) % 97
    cpu = topk_cosine(q, b, 5, bank_chunk=333)
    gpu = topk_cosine(q.cuda(), b.cuda(), 5, bank_chunk=700)
    assert gpu.scores.is_cuda
    assert torch.equal(gpu.scores.cpu(), cpu.scores) and torch.equal(gpu.indices.cpu(), cpu.indices)
    cpu = topk_identities(q, b, ids, 3, bank_chunk=250)
    gpu = topk_identities(q.cuda(), b.cuda(), ids.cuda(), 3)
    assert torch.equal(gpu.scores.cpu(), cpu.scores) and torch.equal(gpu.indices.cpu(), cpu.indices)
