// upfirdn2d on the CPU: a direct kernel that only visits the filter taps landing on real input
// pixels (no zero-inserted or padded intermediate image), parallelised with at::parallel_for.
//
// NCHW: a task is a plane (or a block of its output rows). Along y, each output row reads the
// rows lg_upfirdn2d::axis_taps() gives. Along x the work is regular: see ColPlan. The task
// copies the input rows it needs into a buffer with zero margins, so edge columns need no special
// case, and fir_rows() runs an unrolled, vectorisable loop over the output row. Layouts of
// up/down without a fast path go pixel by pixel through lg_upfirdn2d::pixel(), the function the
// CUDA kernel runs.
// Channels-last: a task is a run of output rows (n, oy); the inner loop runs over channels.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops.h"
#include "upfirdn2d_host.h"
#include "upfirdn2d_math.h"

namespace {

using lg_upfirdn2d::AxisTaps;

struct Geometry {
    int64_t N, C, H, W, Ho, Wo;
    int64_t upx, upy, downx, downy, padx0, pady0, fh, fw;
};

// Column plan of the NCHW fast path. Output column ox = q * P + j (phase j < P, q < nq) reads
// input columns ia[j] + q * D + t, t < NT, against filter taps kx = ka[j] + t * upx: the column
// ox + P sees the taps of ox shifted by D input pixels, because P * downx = D * upx. Phases with
// fewer taps than NT get zero weights for kx >= fw. Reads may start left of column 0 or pass W:
// each task copies its input rows into a buffer with zero margins covering columns [xlo, xhi].
// The buffer stores a row as D phases (columns xlo + m, xlo + m + D, ... for m < D), so the
// kernel's loads are contiguous for any D.
constexpr int kMaxP = 4;
struct ColPlan {
    bool ok = false;
    int P = 1, D = 1, NT = 0;
    int64_t nq = 0, xlo = 0, xhi = 0;
    int64_t seg = 0;  // length of one phase of a buffer row
    int64_t ia[kMaxP] = {};
    int64_t ka[kMaxP] = {};
};

ColPlan plan_columns(const Geometry& G) {
    ColPlan cp;
    const int64_t g = std::gcd(G.upx, G.downx);
    const int64_t P = G.upx / g, D = G.downx / g;
    if (P != 1 && P != 2 && P != 4) return cp;
    cp.P = static_cast<int>(P);
    cp.D = static_cast<int>(D);
    int32_t nt = 0;
    for (int j = 0; j < cp.P; ++j) {
        const int64_t t0 = j * G.downx - G.padx0;
        cp.ia[j] = -lg_upfirdn2d::floor_div(-t0, G.upx);  // ceil(t0 / upx): the first tap on a real pixel
        cp.ka[j] = cp.ia[j] * G.upx - t0;
        nt = std::max(nt, lg_upfirdn2d::axis_full_taps(j, G.upx, G.downx, G.padx0, G.fw));
    }
    if (nt < 1) return cp;  // every output column only sees inserted zeros
    cp.NT = nt;
    cp.nq = (G.Wo + P - 1) / P;
    int64_t lo = cp.ia[0], hi = cp.ia[0];
    for (int j = 1; j < cp.P; ++j) {
        lo = std::min(lo, cp.ia[j]);
        hi = std::max(hi, cp.ia[j]);
    }
    hi += (cp.nq - 1) * D + nt - 1;
    cp.xlo = std::min<int64_t>(lo, 0);
    cp.xhi = std::max<int64_t>(hi, G.W - 1);
    cp.seg = (cp.xhi - cp.xlo + 1 + D - 1) / D;
    cp.ok = true;
    return cp;
}

// out[q * P + j] (+)= sum_{r < NR, t < NT} w[j][r][t] * xp[j][r][t][q] for q < nq: NR input rows
// and NT taps per call (more take more calls with accum = true). One partial sum per row keeps
// the dependency chains short.
template <typename scalar_t, typename acc_t, int P, int NT, int NR>
void fir_rows(acc_t* __restrict__ out, int64_t nq, bool accum, const scalar_t* const* ptrs, const acc_t* w) {
    acc_t wl[P][NR][NT];
    const scalar_t* xp[P][NR][NT];
    for (int j = 0; j < P; ++j)
        for (int r = 0; r < NR; ++r)
            for (int t = 0; t < NT; ++t) {
                wl[j][r][t] = w[(j * NR + r) * NT + t];
                xp[j][r][t] = ptrs[(j * NR + r) * NT + t];
            }
    auto body = [&](auto accum_c) {
        constexpr bool A = decltype(accum_c)::value;
        for (int64_t q = 0; q < nq; ++q) {
            for (int j = 0; j < P; ++j) {
                acc_t part[NR];
                for (int r = 0; r < NR; ++r) {
                    acc_t s = wl[j][r][0] * static_cast<acc_t>(xp[j][r][0][q]);
                    for (int t = 1; t < NT; ++t) s += wl[j][r][t] * static_cast<acc_t>(xp[j][r][t][q]);
                    part[r] = s;
                }
                if (NR >= 2) part[0] += part[NR >= 2 ? 1 : 0];
                if (NR >= 4) part[2] += part[NR >= 4 ? 3 : 0];
                if (NR >= 3) part[0] += part[NR >= 3 ? 2 : 0];
                out[q * P + j] = A ? out[q * P + j] + part[0] : part[0];
            }
        }
    };
    if (accum)
        body(std::true_type{});
    else
        body(std::false_type{});
}

template <typename scalar_t, typename acc_t>
using FirFn = void (*)(acc_t*, int64_t, bool, const scalar_t* const*, const acc_t*);

constexpr int kMaxGroup = 4;  // rows and taps per fir_rows call
constexpr int64_t kSmallPlane = 256;  // input pixels per plane up to which whole planes are one call per y phase

// table[nr - 1][nt - 1] = fir_rows<P, nt, nr> for 1 <= nr, nt <= kMaxGroup
template <typename scalar_t, typename acc_t, int P>
struct FirTable {
    using Table = FirFn<scalar_t, acc_t> (&)[kMaxGroup][kMaxGroup];
    template <int NR, int... NT>
    static void fill_row(Table t, std::integer_sequence<int, NT...>) {
        ((t[NR - 1][NT] = &fir_rows<scalar_t, acc_t, P, NT + 1, NR>), ...);
    }
    template <int... NR>
    static void fill(Table t, std::integer_sequence<int, NR...>) {
        (fill_row<NR + 1>(t, std::make_integer_sequence<int, kMaxGroup>{}), ...);
    }
};

template <typename scalar_t, typename acc_t>
void fir_table(int P, FirFn<scalar_t, acc_t> (&t)[kMaxGroup][kMaxGroup]) {
    const auto seq = std::make_integer_sequence<int, kMaxGroup>{};
    if (P == 1) FirTable<scalar_t, acc_t, 1>::fill(t, seq);
    if (P == 2) FirTable<scalar_t, acc_t, 2>::fill(t, seq);
    if (P == 4) FirTable<scalar_t, acc_t, 4>::fill(t, seq);
}

// One fir_rows call of an output row: rows r0 .. r0 + nr - 1 of the row's taps, column taps
// t0 .. t0 + nt - 1, weights at wpool[woff], [P][nr][nt].
struct Call {
    int r0, nr, t0, nt;
    int64_t woff;
};

// Splits [0, Ho) of every plane into blocks so that there are enough tasks for the threads.
inline int64_t row_blocks(int64_t planes, int64_t Ho) {
    const int64_t want = 4 * static_cast<int64_t>(at::get_num_threads());
    if (planes >= want) return 1;
    return std::min<int64_t>(Ho, (want + planes - 1) / planes);
}

template <typename scalar_t, typename acc_t>
void run_nchw(const Geometry& G, const scalar_t* x, const int64_t* xs, scalar_t* y, const int64_t* ys,
              const std::vector<acc_t>& g, const std::vector<AxisTaps>& rowt, const std::vector<AxisTaps>& colt) {
    // xs / ys: strides in elements, order N, C, H, W; x's and y's W strides are 1.
    const ColPlan cp = plan_columns(G);
    const int64_t planes = G.N * G.C;
    const acc_t* gp = g.data();

    if (!cp.ok) {
        // Generic path: every output pixel through lg_upfirdn2d::pixel(), as on the GPU.
        const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(G.Wo, 1));
        at::parallel_for(0, planes * G.Ho, grain, [&](int64_t begin, int64_t end) {
            for (int64_t row = begin; row < end; ++row) {
                const int64_t oy = row % G.Ho, p = row / G.Ho;
                const scalar_t* xpl = x + (p / G.C) * xs[0] + (p % G.C) * xs[1];
                scalar_t* yrow = y + (p / G.C) * ys[0] + (p % G.C) * ys[1] + oy * ys[2];
                const AxisTaps ty = rowt[oy];
                for (int64_t ox = 0; ox < G.Wo; ++ox)
                    yrow[ox] = static_cast<scalar_t>(lg_upfirdn2d::pixel<scalar_t, acc_t>(
                        xpl, xs[2], xs[3], gp, G.fw, G.upy, G.upx, ty, colt[ox]));
            }
        });
        return;
    }

    FirFn<scalar_t, acc_t> table[kMaxGroup][kMaxGroup] = {};
    fir_table<scalar_t, acc_t>(cp.P, table);
    const int P = cp.P;
    const int64_t D = cp.D;
    const int64_t RW = cp.seg * D;  // buffer row width
    const int64_t npad = cp.nq * P;  // columns computed (>= Wo)

    // Offset within a buffer row of column tap t of phase j at q = 0.
    std::vector<int64_t> coff(static_cast<size_t>(P * cp.NT));
    for (int j = 0; j < P; ++j)
        for (int t = 0; t < cp.NT; ++t) {
            const int64_t u = cp.ia[j] + t - cp.xlo;
            coff[j * cp.NT + t] = (u % D) * cp.seg + u / D;
        }
    // The calls of every output row, with their weights.
    std::vector<int64_t> first(static_cast<size_t>(G.Ho + 1));
    std::vector<Call> calls;
    std::vector<acc_t> wpool;
    for (int64_t oy = 0; oy < G.Ho; ++oy) {
        first[oy] = static_cast<int64_t>(calls.size());
        const AxisTaps ty = rowt[oy];
        for (int r0 = 0; r0 < ty.n; r0 += kMaxGroup)
            for (int t0 = 0; t0 < cp.NT; t0 += kMaxGroup) {
                Call c{r0, std::min(kMaxGroup, ty.n - r0), t0, std::min(kMaxGroup, cp.NT - t0),
                       static_cast<int64_t>(wpool.size())};
                for (int j = 0; j < P; ++j)
                    for (int r = 0; r < c.nr; ++r)
                        for (int t = 0; t < c.nt; ++t) {
                            const int64_t ky = ty.k0 + static_cast<int64_t>(r0 + r) * G.upy;
                            const int64_t kx = cp.ka[j] + static_cast<int64_t>(t0 + t) * G.upx;
                            wpool.push_back(kx < G.fw ? gp[ky * G.fw + kx] : acc_t(0));
                        }
                calls.push_back(c);
            }
    }
    first[G.Ho] = static_cast<int64_t>(calls.size());

    // Small planes: one task handles whole planes. The plan of the rows mirrors ColPlan (rp), and
    // the buffer holds the plane with zero margins on all sides, split by x phase and y phase, so
    // that the rows one y phase of the output reads are contiguous with stride S. One fir_rows call
    // then covers every output row of a y phase as a single long row of (M - 1) * S + nq columns
    // (the S - nq columns between rows are computed and dropped).
    Geometry Gy = G;
    Gy.W = G.H;
    Gy.Wo = G.Ho;
    Gy.upx = G.upy;
    Gy.downx = G.downy;
    Gy.padx0 = G.pady0;
    Gy.fw = G.fh;
    const ColPlan rp = plan_columns(Gy);
    if (rp.ok && G.H * G.W <= kSmallPlane && G.Ho * G.Wo <= 4 * kSmallPlane) {
        const int Py = rp.P;
        const int64_t Dx = cp.D, Dy = rp.D;
        const int64_t S = cp.seg, R = rp.seg, blk = R * S;
        const int64_t bufsz = Dx * Dy * blk;
        const int64_t M = rp.nq;
        const int64_t L = (M - 1) * S + cp.nq;
        // Buffer offset of padded row uy / column ux is yoff(uy) + xoff(ux).
        auto xoff = [&](int64_t ux) { return (ux % Dx) * Dy * blk + ux / Dx; };
        auto yoff = [&](int64_t uy) { return (uy % Dy) * blk + (uy / Dy) * S; };
        std::vector<int64_t> xin(static_cast<size_t>(G.W)), yin(static_cast<size_t>(G.H));
        for (int64_t ix = 0; ix < G.W; ++ix) xin[ix] = xoff(ix - cp.xlo);
        for (int64_t iy = 0; iy < G.H; ++iy) yin[iy] = yoff(iy - rp.xlo);
        struct SCall {
            int nr, nt;
            int64_t woff, poff;
        };
        std::vector<SCall> scalls;
        std::vector<int64_t> sfirst(static_cast<size_t>(Py + 1));
        std::vector<acc_t> swp;
        std::vector<int64_t> spool;
        for (int ry = 0; ry < Py; ++ry) {
            sfirst[ry] = static_cast<int64_t>(scalls.size());
            for (int r0 = 0; r0 < rp.NT; r0 += kMaxGroup)
                for (int t0 = 0; t0 < cp.NT; t0 += kMaxGroup) {
                    SCall c{std::min(kMaxGroup, rp.NT - r0), std::min(kMaxGroup, cp.NT - t0),
                            static_cast<int64_t>(swp.size()), static_cast<int64_t>(spool.size())};
                    for (int j = 0; j < P; ++j)
                        for (int r = 0; r < c.nr; ++r)
                            for (int t = 0; t < c.nt; ++t) {
                                const int64_t ky = rp.ka[ry] + static_cast<int64_t>(r0 + r) * G.upy;
                                const int64_t kx = cp.ka[j] + static_cast<int64_t>(t0 + t) * G.upx;
                                swp.push_back(ky < G.fh && kx < G.fw ? gp[ky * G.fw + kx] : acc_t(0));
                                spool.push_back(yoff(rp.ia[ry] - rp.xlo + r0 + r) + xoff(cp.ia[j] - cp.xlo + t0 + t));
                            }
                    scalls.push_back(c);
                }
        }
        sfirst[Py] = static_cast<int64_t>(scalls.size());
        const int64_t grain = std::max<int64_t>(1, 16384 / (G.Ho * G.Wo + G.H * G.W));
        at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
            std::vector<scalar_t> buf(static_cast<size_t>(bufsz), scalar_t(0));  // margins stay zero
            std::vector<acc_t> tmp(static_cast<size_t>(M * S * P));
            const scalar_t* ptrs[kMaxP * kMaxGroup * kMaxGroup];
            scalar_t* bp = buf.data();
            for (int64_t p = begin; p < end; ++p) {
                const scalar_t* xpl = x + (p / G.C) * xs[0] + (p % G.C) * xs[1];
                scalar_t* ypl = y + (p / G.C) * ys[0] + (p % G.C) * ys[1];
                for (int64_t iy = 0; iy < G.H; ++iy) {
                    const scalar_t* src = xpl + iy * xs[2];
                    scalar_t* dst = bp + yin[iy];
                    if (Dx == 1) {
                        std::copy(src, src + G.W, dst + xin[0]);
                    } else {
                        for (int64_t ix = 0; ix < G.W; ++ix) dst[xin[ix]] = src[ix];
                    }
                }
                for (int ry = 0; ry < Py; ++ry) {
                    for (int64_t ci = sfirst[ry]; ci < sfirst[ry + 1]; ++ci) {
                        const SCall& c = scalls[ci];
                        const int n = P * c.nr * c.nt;
                        for (int k = 0; k < n; ++k) ptrs[k] = bp + spool[c.poff + k];
                        table[c.nr - 1][c.nt - 1](tmp.data(), L, ci != sfirst[ry], ptrs, swp.data() + c.woff);
                    }
                    for (int64_t m = 0; m < M; ++m) {
                        const int64_t oy = m * Py + ry;
                        if (oy >= G.Ho) break;
                        const acc_t* src = tmp.data() + m * S * P;
                        scalar_t* yrow = ypl + oy * ys[2];
                        for (int64_t ox = 0; ox < G.Wo; ++ox) yrow[ox] = static_cast<scalar_t>(src[ox]);
                    }
                }
            }
        });
        return;
    }

    const int64_t nblk = row_blocks(planes, G.Ho);
    at::parallel_for(0, planes * nblk, 1, [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> buf;  // input rows with zero margins, phase-split by D
        std::vector<acc_t> tmp(static_cast<size_t>(npad));
        const scalar_t* ptrs[kMaxP * kMaxGroup * kMaxGroup];
        for (int64_t task = begin; task < end; ++task) {
            const int64_t p = task / nblk, blk = task % nblk;
            const int64_t oy0 = blk * G.Ho / nblk, oy1 = (blk + 1) * G.Ho / nblk;
            const scalar_t* xpl = x + (p / G.C) * xs[0] + (p % G.C) * xs[1];
            scalar_t* ypl = y + (p / G.C) * ys[0] + (p % G.C) * ys[1];
            // The input rows this block reads.
            int64_t iy0 = G.H, iy1 = -1;
            for (int64_t oy = oy0; oy < oy1; ++oy)
                if (rowt[oy].n > 0) {
                    iy0 = std::min(iy0, rowt[oy].i0);
                    iy1 = std::max(iy1, rowt[oy].i0 + rowt[oy].n - 1);
                }
            const int64_t nrows = std::max<int64_t>(iy1 - iy0 + 1, 0);
            if (static_cast<int64_t>(buf.size()) < nrows * RW) buf.resize(static_cast<size_t>(nrows * RW), scalar_t(0));
            // Only the columns [0, W) are written, so the margins stay zero.
            for (int64_t iy = iy0; iy <= iy1; ++iy) {
                const scalar_t* src = xpl + iy * xs[2];
                scalar_t* dst = buf.data() + (iy - iy0) * RW;
                // Column ix goes to buffer phase (u0 + ix) % D at index (u0 + ix) / D, u0 = -xlo >= 0.
                const int64_t u0 = -cp.xlo;
                if (D == 1) {
                    std::copy(src, src + G.W, dst + u0);
                } else if (D == 2) {
                    scalar_t* __restrict__ de = dst + (u0 & 1) * cp.seg + (u0 >> 1);
                    scalar_t* __restrict__ dd = dst + ((u0 + 1) & 1) * cp.seg + ((u0 + 1) >> 1);
                    const int64_t half = G.W / 2;
                    for (int64_t k = 0; k < half; ++k) {
                        de[k] = src[2 * k];
                        dd[k] = src[2 * k + 1];
                    }
                    if (G.W & 1) de[half] = src[G.W - 1];
                } else {
                    for (int64_t m = 0; m < D && m < G.W; ++m) {
                        scalar_t* d = dst + ((u0 + m) % D) * cp.seg + (u0 + m) / D;
                        for (int64_t ix = m; ix < G.W; ix += D) *d++ = src[ix];
                    }
                }
            }

            for (int64_t oy = oy0; oy < oy1; ++oy) {
                scalar_t* yrow = ypl + oy * ys[2];
                const bool direct = std::is_same<acc_t, scalar_t>::value && npad == G.Wo;
                acc_t* out = direct ? reinterpret_cast<acc_t*>(yrow) : tmp.data();
                if (first[oy] == first[oy + 1]) std::fill(out, out + npad, acc_t(0));
                const int64_t rowbase = rowt[oy].i0 - iy0;
                for (int64_t ci = first[oy]; ci < first[oy + 1]; ++ci) {
                    const Call& c = calls[ci];
                    for (int j = 0; j < P; ++j)
                        for (int r = 0; r < c.nr; ++r) {
                            const scalar_t* row = buf.data() + (rowbase + c.r0 + r) * RW;
                            for (int t = 0; t < c.nt; ++t)
                                ptrs[(j * c.nr + r) * c.nt + t] = row + coff[j * cp.NT + c.t0 + t];
                        }
                    table[c.nr - 1][c.nt - 1](out, cp.nq, ci != first[oy], ptrs, wpool.data() + c.woff);
                }
                if (!direct)
                    for (int64_t ox = 0; ox < G.Wo; ++ox) yrow[ox] = static_cast<scalar_t>(out[ox]);
            }
        }
    });
}

template <typename scalar_t, typename acc_t>
void run_channels_last(const Geometry& G, const scalar_t* x, const int64_t* xs, scalar_t* y, const int64_t* ys,
                       const std::vector<acc_t>& g, const std::vector<AxisTaps>& rowt,
                       const std::vector<AxisTaps>& colt) {
    // x and y are channels-last: C stride 1.
    const int64_t rows = G.N * G.Ho;
    const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(G.Wo * G.C, 1));
    const acc_t* gp = g.data();
    const int64_t C = G.C;
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        std::vector<acc_t> accv(static_cast<size_t>(C));
        acc_t* __restrict__ acc = accv.data();
        for (int64_t row = begin; row < end; ++row) {
            const int64_t oy = row % G.Ho, n = row / G.Ho;
            const AxisTaps ty = rowt[oy];
            for (int64_t ox = 0; ox < G.Wo; ++ox) {
                const AxisTaps tx = colt[ox];
                std::fill(acc, acc + C, acc_t(0));
                for (int a = 0; a < ty.n; ++a) {
                    const scalar_t* xr = x + n * xs[0] + (ty.i0 + a) * xs[2];
                    const acc_t* gr = gp + static_cast<int64_t>(ty.k0 + a * G.upy) * G.fw;
                    for (int b = 0; b < tx.n; ++b) {
                        const acc_t w = gr[tx.k0 + b * G.upx];
                        const scalar_t* __restrict__ xp = xr + (tx.i0 + b) * xs[3];
                        for (int64_t c = 0; c < C; ++c) acc[c] += w * static_cast<acc_t>(xp[c]);
                    }
                }
                scalar_t* __restrict__ yp = y + n * ys[0] + oy * ys[2] + ox * ys[3];
                for (int64_t c = 0; c < C; ++c) yp[c] = static_cast<scalar_t>(acc[c]);
            }
        }
    });
}

}  // namespace

at::Tensor upfirdn2d_cpu(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                         int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                         double gain) {
    TORCH_CHECK(x.device().is_cpu(), "upfirdn2d_cpu: x must be a CPU tensor, got ", x.device());
    TORCH_CHECK(f.device().is_cpu(), "upfirdn2d_cpu: f must be a CPU tensor, got ", f.device());
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                "upfirdn2d_cpu: x must be float32 or float64, got ", x.scalar_type());
    const auto out =
        lg_upfirdn2d::checked_output_size("upfirdn2d_cpu", x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1);
    const int64_t Ho = out.first, Wo = out.second;
    const int64_t fh = f.size(0), fw = f.size(1);
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);

    const auto fmt = x.suggest_memory_format();
    const bool cl = fmt == at::MemoryFormat::ChannelsLast;
    at::Tensor y = at::empty({N, C, Ho, Wo}, x.options().memory_format(fmt));
    if (y.numel() == 0) return y;
    at::Tensor xc = x.contiguous(fmt);
    if (xc.numel() == 0) return y.zero_();  // H or W is 0 (N, C > 0 here): only padding
    at::Tensor fc = f.contiguous();

    Geometry G{N, C, H, W, Ho, Wo, upx, upy, downx, downy, padx0, pady0, fh, fw};
    std::vector<AxisTaps> rowt(Ho), colt(Wo);
    for (int64_t o = 0; o < Ho; ++o) rowt[o] = lg_upfirdn2d::axis_taps(o, upy, downy, pady0, H, fh);
    for (int64_t o = 0; o < Wo; ++o) colt[o] = lg_upfirdn2d::axis_taps(o, upx, downx, padx0, W, fw);
    const int64_t xs[4] = {xc.stride(0), xc.stride(1), xc.stride(2), xc.stride(3)};
    const int64_t ys[4] = {y.stride(0), y.stride(1), y.stride(2), y.stride(3)};

    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_cpu", [&] {
        using acc_t = scalar_t;
        // Correlation taps with flip and gain folded in: g[ky][kx] = gain * f[fh-1-ky][fw-1-kx] (or f[ky][kx]).
        std::vector<acc_t> g(static_cast<size_t>(fh * fw));
        const scalar_t* fp = fc.data_ptr<scalar_t>();
        for (int64_t ky = 0; ky < fh; ++ky)
            for (int64_t kx = 0; kx < fw; ++kx) {
                const int64_t src = flip ? ky * fw + kx : (fh - 1 - ky) * fw + (fw - 1 - kx);
                g[ky * fw + kx] = static_cast<acc_t>(static_cast<double>(fp[src]) * gain);
            }
        if (cl)
            run_channels_last<scalar_t, acc_t>(G, xc.data_ptr<scalar_t>(), xs, y.data_ptr<scalar_t>(), ys, g, rowt,
                                               colt);
        else
            run_nchw<scalar_t, acc_t>(G, xc.data_ptr<scalar_t>(), xs, y.data_ptr<scalar_t>(), ys, g, rowt, colt);
    });
    return y;
}
