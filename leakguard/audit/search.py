"""Exact top-k cosine search of queries against a bank of embeddings, image by image or identity by
identity, in bounded memory, on the device the tensors live on (CUDA when they are there).

    hits = topk_cosine(generated, train, k=1)                     # hits.scores, hits.indices: [M, k]
    near = topk_identities(generated, train, train_ids, k=5)      # indices: identity ids, max over images
    cent = topk_identities(generated, train, train_ids, reduce="centroid")

The score. s(q, b) of a query row q and a bank row b is defined pair by pair: the float32 nearest to
the float64 sum of the products q_d b_d, added in a fixed binary tree (zero-padded to a power of two
P: entry d meets entry d + P/2, then the halves again). Products of two float32 are exact in float64,
and IEEE additions in a fixed order give one result on any device, so s(q, b) depends on nothing but
q and b: not on chunk shapes, batch sizes, the BLAS or the GPU (`exact_scores`). It is the correctly
rounded dot product except when that lies within about 1e-15 of a float32 rounding midpoint.

The answer. A query's top k: the bank rows ordered by s descending, ties by the lower bank index, the
first k. `topk_cosine` returns exactly that, scores and indices, whatever the chunk sizes; for
identities the same with the identity id in place of the bank index.

How, fast. A float32 matmul gives a score fast(q, b) that depends on the chunk shape (on this machine's
MKL the same pair's score moves by up to 1.5e-7 between chunk shapes), but a float32 dot product summed
in any order, with or without FMA, lies within gamma_D sum_d |q_d b_d| of the true value (Higham,
Accuracy and Stability of Numerical Algorithms, eq. 3.5; gamma_D = D u / (1 - D u), u = 2^-24). So
|fast - s| <= eps (`fast_error_bound`: that bound times |q| |b|, plus the rounding of s itself, plus the
input rounding of TF32 or bfloat16 when torch's float32 matmul precision allows them, times 1.001).
For a chunk of queries the bank streams past in chunks, keeping the L = k + spare best fast scores per
query. With f_k the k-th best fast score, every row of the true top k has fast >= f_k - 2 eps (its s is
at least the k-th best s, which is >= f_k - eps). Those candidates are rescored with s, and the top k
chosen among them. A query whose L kept scores all reach f_k - 2 eps may have lost a candidate (more
than L near-ties, e.g. duplicated bank rows): the bank is scanned again for it, rescoring every row with
fast >= f_k - 2 eps, so the answer stays exact and only the time grows. A query whose best fast score
in a bank chunk is below its running f_k - 2 eps skips that chunk's top-L merge (f_k only rises), so
after c chunks only about k / c of the queries pay for one.

What is guaranteed: the result equals the top k under s with the tie rule above, provided the float32
matmul obeys the error bound (IEEE float32 BLAS and cuBLAS do; TF32 and bfloat16 are accounted for)
and float64 is IEEE (CPU and CUDA; Apple MPS has no float64 and is refused by torch).

Identities. reduce="max": an identity's score is the max of s over its images. The bank is visited in
identity order with chunks cut at identity boundaries; the fast max over an identity's images is within
eps of the exact max, so the argument above carries over with identities for rows. reduce="centroid":
the score is s(q, c), c the float32 normalised mean (mean in float64) of the identity's embeddings:
the image search over the centroids. Ties: the lower identity id.

Memory. The float32 score block [query chunk, bank chunk] takes at most half of memory_bytes
(`chunk_sizes`), the copy of the queries that need a merge at most a quarter, rescoring slices a
quarter. In identity mode a chunk also holds the gathered bank rows (bank chunk x D floats) and the
per-identity maxima (at most another score block), and an identity with more images than a bank
chunk is scored as one chunk of its own. Buffers are reused from chunk to chunk.
"""
import math
from typing import NamedTuple, Optional

import numpy as np
import torch

MEMORY_BYTES = 1 << 30   # default working memory of one search (bytes)
QUERY_CHUNK = 4096       # at most this many queries per score block: more gains little in a matmul
SPARE = 8                # fast candidates kept per query beyond k
NORM_TOL = 1e-3          # |row norm - 1| accepted as a unit row (as in leakguard.matchers.calibrate)
SAFETY = 1.001           # eps is inflated by this factor: covers the rounding in computing it
U32 = 2.0 ** -24         # unit roundoff of float32
U64 = 2.0 ** -53         # unit roundoff of float64
REDUCES = ("max", "centroid")


class TopK(NamedTuple):
    """The k best of each query, best first."""
    scores: torch.Tensor     # [M, k] float32, s(q, b) as defined in the module doc, descending per row
    indices: torch.Tensor    # [M, k] int64: bank rows (topk_cosine) or identity ids (topk_identities)


# ---------------------------------------------------------------------------------------------------
# Inputs


def _rows(x, name: str, where: str) -> torch.Tensor:
    """x as a float32 contiguous [rows, D] tensor, or an error naming what is wrong with it."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected {name} as a torch.Tensor or numpy array [rows, D], "
                        f"got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: expected {name} of shape [rows, D] with at least one row and D >= 1, "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{where}: expected float {name}, got {x.dtype}")
    return x.detach().to(torch.float32).contiguous()


def _max_unit_norm(x: torch.Tensor, name: str, where: str, memory_bytes: int) -> float:
    """The largest row norm of x [N, D], after checking every row is finite and of norm 1 +- NORM_TOL."""
    step = max(1, memory_bytes // (8 * x.shape[1]))
    norms = torch.cat([torch.linalg.vector_norm(x[i:i + step], dim=1) for i in range(0, len(x), step)])  # [N]
    bad = torch.nonzero(~torch.isfinite(norms)).flatten()
    if len(bad):
        raise ValueError(f"{where}: {len(bad)} rows of {name} hold NaN or inf (first rows: {bad[:5].tolist()})")
    off = torch.nonzero((norms - 1).abs() > NORM_TOL).flatten()
    if len(off):
        r = int(off[0])
        raise ValueError(f"{where}: {name} must be L2-normalised rows (Matcher.embed output, or "
                         f"F.normalize(e, dim=1)); row {r} has norm {float(norms[r]):.6g} "
                         f"({len(off)} rows off by more than {NORM_TOL:g})")
    return float(norms.max())


def _check_pair(queries, bank, where: str, memory_bytes: int):
    """-> (queries [M, D], bank [N, D], max query norm, max bank norm), checked."""
    if memory_bytes < 1:
        raise ValueError(f"{where}: memory_bytes={memory_bytes} must be >= 1")
    q, b = _rows(queries, "queries", where), _rows(bank, "bank", where)
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"{where}: queries have D={q.shape[1]} but the bank has D={b.shape[1]}; "
                         "embed both with the same matcher")
    if q.device != b.device:
        raise ValueError(f"{where}: queries are on {q.device} but the bank is on {b.device}; move both "
                         "to one device")
    return q, b, _max_unit_norm(q, "queries", where, memory_bytes), _max_unit_norm(b, "bank", where, memory_bytes)


def _check_k(k: int, available: int, what: str, where: str):
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{where}: k={k!r} must be an integer >= 1")
    if k > available:
        raise ValueError(f"{where}: k={k} exceeds the {available} {what} searched; pass k <= {available}")


def _labels(ids, n: int, device, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity ids [N] -> (the distinct ids ascending [K], label of each row in 0..K-1 [N])."""
    if isinstance(ids, np.ndarray):
        ids = torch.from_numpy(ids)
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1 or len(ids) != n:
        raise ValueError(f"{where}: expected one identity id per bank row: {n} rows, got ids of shape "
                         f"{tuple(np.shape(ids))}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"{where}: identity ids must be integers, got {ids.dtype}; map names to integers "
                         "first (e.g. np.unique(names, return_inverse=True))")
    uids, labels = torch.unique(ids.to(device=device, dtype=torch.int64), sorted=True, return_inverse=True)
    return uids, labels


# ---------------------------------------------------------------------------------------------------
# Scores


def chunk_sizes(m: int, n: int, memory_bytes: int = MEMORY_BYTES) -> tuple[int, int]:
    """(query chunk, bank chunk) for M queries and N bank rows: their float32 score block takes at most
    half of memory_bytes (the rest: top-k merges, gathered rows, rescoring)."""
    e = max(1, memory_bytes // 8)                          # score entries per block
    mq = min(m, QUERY_CHUNK, max(1, math.isqrt(e)))
    return mq, min(n, max(1, e // mq))


def _input_roundoff(device: torch.device) -> float:
    """Unit roundoff of the matmul inputs torch may use for float32 here: 0 (IEEE float32), 2^-11 (TF32)
    or 2^-8 (bfloat16), from the global settings that allow the reduced ones."""
    u = {"highest": 0.0, "high": 2.0 ** -11}.get(torch.get_float32_matmul_precision(), 2.0 ** -8)
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        u = max(u, 2.0 ** -11)
    for backend in (torch.backends, torch.backends.cuda.matmul, getattr(torch.backends.mkldnn, "matmul", None)):
        p = getattr(backend, "fp32_precision", None)        # the newer per-backend switch
        if p == "tf32":
            u = max(u, 2.0 ** -11)
        elif p not in (None, "none", "ieee"):
            u = max(u, 2.0 ** -8)
    return u


def fast_error_bound(d: int, q_norm: float, b_norm: float, device=torch.device("cpu")) -> float:
    """eps with |fast(q, b) - s(q, b)| <= eps for rows of norms <= q_norm, b_norm in D = d dimensions."""
    ui = _input_roundoff(torch.device(device))
    gamma = d * U32 / (1 - d * U32)
    fast = (1 + ui) ** 2 * (1 + gamma) - 1                  # float32 matmul vs the true dot product
    exact = (U32 + 1.01 * math.ceil(math.log2(d)) * U64) * (1 + U32)   # s vs the true dot product
    underflow = 2 * d * 2.0 ** -149                         # absolute: subnormal products
    return SAFETY * ((fast + exact) * q_norm * b_norm + underflow)


def _fast_scores(q: torch.Tensor, b: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """q [m, D] x b [n, D] -> [m, n] float32 scores within fast_error_bound of s, written into out when
    given (tests swap in noisy ones)."""
    return torch.matmul(q, b.T, out=out)


def _exact(q: torch.Tensor, b: torch.Tensor, qi: torch.Tensor, bj: torch.Tensor, memory_bytes: int) -> torch.Tensor:
    """s(q[qi[p]], b[bj[p]]) for every p -> [P] float32 (the score of the module doc)."""
    d = q.shape[1]
    dp = 1 << (d - 1).bit_length()                         # padded width: a power of two
    step = max(1, memory_bytes // (24 * dp))               # float64 products and tree, gathered rows
    out = torch.empty(len(qi), dtype=torch.float32, device=q.device)
    for p0 in range(0, len(qi), step):
        i, j = qi[p0:p0 + step], bj[p0:p0 + step]
        x = q[i].double().mul_(b[j])                       # [p, D]: float32 x float32 is exact in float64
        if dp > d:
            x = torch.nn.functional.pad(x, (0, dp - d))    # [p, dp]: zeros add exactly
        while x.shape[1] > 1:                              # the fixed tree: d meets d + width / 2
            h = x.shape[1] // 2
            x = x[:, :h] + x[:, h:]
        out[p0:p0 + len(i)] = x[:, 0].to(torch.float32)    # round to nearest float32
    return out


def exact_scores(queries, bank, qi, bj, memory_bytes: int = MEMORY_BYTES) -> torch.Tensor:
    """s(queries[qi[p]], bank[bj[p]]) -> [P] float32: the score the search ranks by (module doc).
    Rows need not be unit here."""
    q, b = _rows(queries, "queries", "exact_scores"), _rows(bank, "bank", "exact_scores")
    if q.shape[1] != b.shape[1]:
        raise ValueError(f"exact_scores: queries have D={q.shape[1]} but the bank has D={b.shape[1]}")
    qi, bj = (torch.as_tensor(x, dtype=torch.int64, device=q.device).reshape(-1) for x in (qi, bj))
    if len(qi) != len(bj):
        raise ValueError(f"exact_scores: {len(qi)} query indices but {len(bj)} bank indices; pass one of each per pair")
    return _exact(q, b.to(q.device), qi, bj, memory_bytes)


def _round_down(x: torch.Tensor) -> torch.Tensor:
    """The largest float32 <= each float64 of x: comparing float32 scores with it never loses one >= x."""
    y = x.to(torch.float32)
    return torch.where(y.double() > x, torch.nextafter(y, torch.full_like(y, -math.inf)), y)


# ---------------------------------------------------------------------------------------------------
# Groups: the search's unit (a bank row, or an identity's rows)


class _Groups(NamedTuple):
    """Bank rows in group order: group g holds sorted positions starts[g]:starts[g + 1]."""
    starts: np.ndarray                  # [K + 1] int64
    starts_t: torch.Tensor              # [K + 1] the same on the device
    order: Optional[torch.Tensor]       # [N] bank row at each sorted position; None: the identity
    labels: Optional[torch.Tensor]      # [N] group of each sorted position; None: every group one row

    @property
    def count(self) -> int:
        return len(self.starts) - 1


def _singletons(n: int, device) -> _Groups:
    return _Groups(np.arange(n + 1), torch.arange(n + 1, device=device), None, None)


def _identity_groups(labels: torch.Tensor, k: int) -> _Groups:
    """Groups of the rows sharing a label in 0..k-1 [N]."""
    order = torch.argsort(labels, stable=True)                                 # [N]
    sizes = torch.bincount(labels, minlength=k)                                # [K]
    starts_t = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])         # [K + 1]
    grouped = bool(torch.equal(order, torch.arange(len(order), device=order.device)))
    return _Groups(starts_t.cpu().numpy(), starts_t, None if grouped else order, labels[order])


def _chunks(groups: _Groups, nb: int) -> list[tuple[int, int]]:
    """Consecutive group ranges [g0, g1) of at most nb rows each (or one group when it alone is larger)."""
    out, g0, starts = [], 0, groups.starts
    while g0 < groups.count:
        g1 = max(g0 + 1, int(np.searchsorted(starts, starts[g0] + nb, side="right")) - 1)
        out.append((g0, g1))
        g0 = g1
    return out


class _Scratch:
    """Buffers reused from chunk to chunk: on the CPU a fresh block of scores pays its page faults every
    time (a quarter of the matmul time for 4096 x 32768 scores on this machine)."""

    def __init__(self, device):
        self.device, self.store = device, {}

    def get(self, name: str, shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
        n = math.prod(shape)
        buf = self.store.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            buf = self.store[name] = torch.empty(n, dtype=dtype, device=self.device)
        return buf[:n].view(shape)


def _fast_group_scores(qc: torch.Tensor, b: torch.Tensor, groups: _Groups, g0: int, g1: int,
                       scratch: _Scratch) -> torch.Tensor:
    """[m, g1 - g0] float32: per group, the max fast score over its rows (a view of scratch memory)."""
    r0, r1 = int(groups.starts[g0]), int(groups.starts[g1])
    m, n = len(qc), r1 - r0
    rows = b[r0:r1]
    if groups.order is not None:
        rows = torch.index_select(b, 0, groups.order[r0:r1], out=scratch.get("rows", (n, b.shape[1])))
    s = _fast_scores(qc, rows, out=scratch.get("scores", (m, n)))                # [m, n]
    if groups.labels is None:
        return s
    local = (groups.labels[r0:r1] - g0).expand(m, -1)                          # [m, n]
    out = scratch.get("groups", (m, g1 - g0)).fill_(-math.inf)
    return out.scatter_reduce_(1, local, s, "amax", include_self=True)


def _exact_group_scores(q: torch.Tensor, b: torch.Tensor, groups: _Groups, qi: torch.Tensor,
                        g: torch.Tensor, memory_bytes: int) -> torch.Tensor:
    """[P] float32: per (query qi[p], group g[p]), the max of s over the group's rows."""
    if groups.labels is None:
        return _exact(q, b, qi, g if groups.order is None else groups.order[g], memory_bytes)
    sizes = groups.starts_t[g + 1] - groups.starts_t[g]                        # [P]
    ends = torch.cumsum(sizes, 0)
    step = max(1, memory_bytes // (32 * b.shape[1]))                           # rows rescored per slice
    out = torch.empty(len(qi), dtype=torch.float32, device=q.device)
    p0 = 0
    while p0 < len(qi):                                                        # slices of whole groups
        base = int(ends[p0 - 1]) if p0 else 0
        p1 = max(p0 + 1, int(torch.searchsorted(ends, base + step, right=True)))
        pair = torch.repeat_interleave(torch.arange(p0, p1, device=q.device), sizes[p0:p1])   # [T]
        offset = torch.arange(len(pair), device=q.device) + base - (ends[pair] - sizes[pair])
        pos = groups.starts_t[g[pair]] + offset                                # sorted positions
        rows = pos if groups.order is None else groups.order[pos]
        s = _exact(q, b, qi[pair], rows, memory_bytes)                         # [T]
        best = torch.full((p1 - p0,), -math.inf, device=q.device)
        out[p0:p1] = best.scatter_reduce_(0, pair - p0, s, "amax", include_self=True)
        p0 = p1
    return out


def _select(rows: torch.Tensor, scores: torch.Tensor, g: torch.Tensor, m: int, k: int):
    """Of flat candidates (row, score, group), the first k per row by score descending, then the lower
    group -> (rows, scores, groups, rank within the row), flat, rank < k."""
    o = torch.argsort(g, stable=True)
    o = o[torch.argsort(scores[o], descending=True, stable=True)]
    o = o[torch.argsort(rows[o], stable=True)]
    rows, scores, g = rows[o], scores[o], g[o]
    counts = torch.bincount(rows, minlength=m)
    rank = torch.arange(len(rows), device=rows.device) - (torch.cumsum(counts, 0) - counts)[rows]
    keep = rank < k
    return rows[keep], scores[keep], g[keep], rank[keep]


def _rescan(qs: torch.Tensor, b: torch.Tensor, groups: _Groups, chunks, tau: torch.Tensor, k: int,
            memory_bytes: int, scratch: _Scratch):
    """Exact top k of queries qs [m, D] among every group whose fast score is >= tau [m] (float32)
    -> flat (rows, scores, groups, rank) as _select."""
    best = (torch.zeros(0, dtype=torch.int64, device=qs.device), torch.zeros(0, device=qs.device),
            torch.zeros(0, dtype=torch.int64, device=qs.device))
    for g0, g1 in chunks:
        f = _fast_group_scores(qs, b, groups, g0, g1, scratch)                 # [m, g1 - g0]
        r, c = torch.nonzero(f >= tau[:, None], as_tuple=True)
        if len(r):
            s = _exact_group_scores(qs, b, groups, r, c + g0, memory_bytes)
            best = _select(torch.cat([best[0], r]), torch.cat([best[1], s]), torch.cat([best[2], c + g0]),
                           len(qs), k)[:3]
    return _select(*best, len(qs), k)


def _merge(top_s: torch.Tensor, top_g: torch.Tensor, f: torch.Tensor, g0: int, L: int, k: int, eps: float,
           scratch: _Scratch):
    """The L best of the kept (top_s, top_g) [m, <= L] and the fast scores f [m, n] of groups g0.. ->
    (scores descending, groups) [m, <= L]. Whatever is dropped scores <= the L-th kept, or below the
    running f_k - 2 eps (never a candidate): the rescan test in _search relies on no more than that."""
    if top_s.shape[1] < L:
        return _merge_all(top_s, top_g, f, g0, L)
    tau = _round_down(top_s[:, k - 1].double() - 2 * eps)                     # [m]; it only rises
    rows = torch.nonzero(f.amax(dim=1) >= tau).flatten()   # rows this chunk may give a candidate; a max
    if len(rows) == 0:                                      # costs a quarter of a topk, and after c chunks
        return top_s, top_g                                 # about k / c of the rows still need one
    if 2 * len(rows) > len(f):                              # copying most rows costs more than it saves
        return _merge_all(top_s, top_g, f, g0, L)
    hit = torch.index_select(f, 0, rows, out=scratch.get("hit", (len(rows), f.shape[1])))
    s, g = _merge_all(top_s[rows], top_g[rows], hit, g0, L)
    return top_s.index_copy(0, rows, s), top_g.index_copy(0, rows, g)


def _merge_all(top_s, top_g, f, g0: int, L: int):
    v, j = f.topk(min(L, f.shape[1]), dim=1)
    top_s, top_g = torch.cat([top_s, v], 1), torch.cat([top_g, j + g0], 1)
    top_s, j = top_s.topk(min(L, top_s.shape[1]), dim=1)
    return top_s, top_g.gather(1, j)


def _search(q, b, groups: _Groups, k: int, eps: float, mq: int, nb: int, spare: int, memory_bytes: int):
    """Exact top k groups of every query -> (scores [M, k] float32, groups [M, k] int64); module doc."""
    m_all, K = len(q), groups.count
    chunks = _chunks(groups, nb)
    L = min(K, k + spare)
    out_s = torch.empty(m_all, k, dtype=torch.float32, device=q.device)
    out_g = torch.empty(m_all, k, dtype=torch.int64, device=q.device)
    scratch = _Scratch(q.device)
    rescore_bytes = max(1, memory_bytes // 4)
    for q0 in range(0, m_all, mq):
        qc = q[q0:q0 + mq]                                                     # [m, D]
        top_s = torch.empty(len(qc), 0, device=q.device)                       # [m, <= L] fast, descending
        top_g = torch.empty(len(qc), 0, dtype=torch.int64, device=q.device)
        for g0, g1 in chunks:
            f = _fast_group_scores(qc, b, groups, g0, g1, scratch)             # [m, g1 - g0]
            top_s, top_g = _merge(top_s, top_g, f, g0, L, k, eps, scratch)
        tau = _round_down(top_s[:, k - 1].double() - 2 * eps)                  # [m]: f_k - 2 eps, rounded down
        cand = top_s >= tau[:, None]                                           # [m, L]
        full = cand[:, -1] & (L < K)                                           # may have dropped a candidate
        cand &= ~full[:, None]
        r, c = torch.nonzero(cand, as_tuple=True)
        g = top_g[r, c]
        rows, s, g, rank = _select(r, _exact_group_scores(qc, b, groups, r, g, rescore_bytes), g, len(qc), k)
        if full.any():
            lost = torch.nonzero(full).flatten()
            ss = max(1, mq // 8)                                               # candidates: up to ss x nb
            for i in range(0, len(lost), ss):
                part = lost[i:i + ss]
                pr, ps, pg, pk = _rescan(qc[part], b, groups, chunks, tau[part], k, rescore_bytes, scratch)
                rows, s, g, rank = (torch.cat([rows, part[pr]]), torch.cat([s, ps]), torch.cat([g, pg]),
                                    torch.cat([rank, pk]))
        out_s[q0 + rows, rank] = s
        out_g[q0 + rows, rank] = g
    return out_s, out_g


# ---------------------------------------------------------------------------------------------------
# Public


def topk_cosine(queries, bank, k: int = 1, memory_bytes: int = MEMORY_BYTES, query_chunk: Optional[int] = None,
                bank_chunk: Optional[int] = None, spare: int = SPARE) -> TopK:
    """The k bank rows most similar to each query: queries [M, D] and bank [N, D] unit rows (torch on any
    one device, or numpy) -> TopK(scores [M, k], bank indices [M, k]); exact, ties by the lower index
    (module doc). Chunks default to chunk_sizes(M, N, memory_bytes); spare: extra fast candidates kept."""
    where = "topk_cosine"
    q, b, qn, bn = _check_pair(queries, bank, where, memory_bytes)
    _check_k(k, len(b), "bank rows", where)
    mq, nb = _chunking(len(q), len(b), memory_bytes, query_chunk, bank_chunk, spare, where)
    eps = fast_error_bound(q.shape[1], qn, bn, q.device)
    return TopK(*_search(q, b, _singletons(len(b), q.device), k, eps, mq, nb, spare, memory_bytes))


def identity_centroids(bank, ids, memory_bytes: int = MEMORY_BYTES) -> tuple[torch.Tensor, torch.Tensor]:
    """(identity ids ascending [K], their centroids [K, D]): the float32 normalised mean of each
    identity's rows of bank [N, D], the mean taken in float64."""
    where = "identity_centroids"
    b = _rows(bank, "bank", where)
    uids, labels = _labels(ids, len(b), b.device, where)
    return uids, _centroids(b, labels, len(uids), memory_bytes, uids, where)


def _centroids(b, labels, k, memory_bytes, uids, where) -> torch.Tensor:
    sums = torch.zeros(k, b.shape[1], dtype=torch.float64, device=b.device)   # [K, D]
    step = max(1, memory_bytes // (16 * b.shape[1]))
    for i in range(0, len(b), step):
        sums.index_add_(0, labels[i:i + step], b[i:i + step].double())
    norms = torch.linalg.vector_norm(sums, dim=1)                              # [K]
    zero = torch.nonzero(norms <= 1e-12 * torch.bincount(labels, minlength=k)).flatten()
    if len(zero):
        raise ValueError(f"{where}: identity {int(uids[zero[0]])} has a zero mean embedding (its images "
                         "cancel out): no direction to compare with; use reduce='max'")
    return (sums / norms[:, None]).to(torch.float32)


def topk_identities(queries, bank, ids, k: int = 1, reduce: str = "max", memory_bytes: int = MEMORY_BYTES,
                    query_chunk: Optional[int] = None, bank_chunk: Optional[int] = None,
                    spare: int = SPARE) -> TopK:
    """The k identities most similar to each query: queries [M, D], bank [N, D] unit rows, integer
    identity ids [N] -> TopK(scores [M, k], identity ids [M, k]); exact, ties by the lower id.
    reduce: "max" (best image of the identity) or "centroid" (its normalised mean); module doc."""
    where = "topk_identities"
    if reduce not in REDUCES:
        raise ValueError(f"{where}: reduce={reduce!r}; valid: {', '.join(REDUCES)}")
    q, b, qn, bn = _check_pair(queries, bank, where, memory_bytes)
    uids, labels = _labels(ids, len(b), b.device, where)
    _check_k(k, len(uids), "identities", where)
    if reduce == "centroid":
        b = _centroids(b, labels, len(uids), memory_bytes, uids, where)
        bn = float(torch.linalg.vector_norm(b, dim=1).max())
        groups = _singletons(len(b), q.device)
    else:
        groups = _identity_groups(labels, len(uids))
    mq, nb = _chunking(len(q), len(b), memory_bytes, query_chunk, bank_chunk, spare, where)
    eps = fast_error_bound(q.shape[1], qn, bn, q.device)
    scores, g = _search(q, b, groups, k, eps, mq, nb, spare, memory_bytes)
    return TopK(scores, uids[g])


def _chunking(m, n, memory_bytes, query_chunk, bank_chunk, spare, where) -> tuple[int, int]:
    """The chunk sizes asked for, or those the memory budget allows."""
    mq, nb = chunk_sizes(m, n, memory_bytes)
    for name, v in (("query_chunk", query_chunk), ("bank_chunk", bank_chunk)):
        if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"{where}: {name}={v!r} must be an integer >= 1 (or None: from memory_bytes)")
    if not isinstance(spare, (int, np.integer)) or spare < 0:
        raise ValueError(f"{where}: spare={spare!r} must be an integer >= 0")
    return query_chunk or mq, bank_chunk or nb
