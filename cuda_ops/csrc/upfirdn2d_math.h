// upfirdn2d indexing shared by the CPU and CUDA kernels.
//
// Notation, per axis (the same on x and y): the input has `in_size` pixels; zero insertion makes
// pixel i land at i * up; padding shifts it to i * up + pad0 (a negative pad crops). The filter is
// applied as a correlation with taps g[0..fsize-1], where g is f flipped (a true convolution) or f
// itself (flip == true), with the gain folded in. Output pixel o reads the padded signal at
// o * down + k for k in [0, fsize), so the tap k meets input pixel i exactly when
//     i * up + pad0 == o * down + k   <=>   k == i * up - t0,   t0 = o * down - pad0.
// Only i with 0 <= k < fsize and 0 <= i < in_size contribute: i runs over consecutive integers
// from ceil(t0 / up), and k steps by `up`. Everything else is an inserted zero or padding.
#pragma once

#include <cstdint>
#include <type_traits>

#ifndef LG_HOST_DEVICE
#ifdef __CUDACC__
#define LG_HOST_DEVICE __host__ __device__
#else
#define LG_HOST_DEVICE
#endif
#endif

namespace lg_upfirdn2d {

// floor(a / b) for b > 0 (C++ division truncates toward zero).
LG_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t b) {
    const int64_t q = a / b;
    return (q * b > a) ? q - 1 : q;
}

// The taps of one output coordinate along one axis: input pixels i0 .. i0 + n - 1 meet filter
// taps k0, k0 + up, ..., k0 + (n - 1) * up. n may be 0 (the output pixel only sees zeros).
struct AxisTaps {
    int64_t i0;
    int32_t k0;
    int32_t n;
};

LG_HOST_DEVICE inline AxisTaps axis_taps(int64_t o, int64_t up, int64_t down, int64_t pad0, int64_t in_size,
                                         int64_t fsize) {
    const int64_t t0 = o * down - pad0;
    // First and last input pixel whose tap lies in [0, fsize): ceil(t0 / up) .. floor((t0 + fsize - 1) / up).
    int64_t ia = -floor_div(-t0, up);
    int64_t ib = floor_div(t0 + fsize - 1, up);
    // Pixels outside the input are zeros (padding).
    if (ia < 0) ia = 0;
    if (ib > in_size - 1) ib = in_size - 1;
    AxisTaps t;
    t.i0 = ia;
    t.k0 = static_cast<int32_t>(ia * up - t0);
    t.n = ib >= ia ? static_cast<int32_t>(ib - ia + 1) : 0;
    return t;
}

// Number of taps an output coordinate sees when none is cut off by the input's edges.
LG_HOST_DEVICE inline int32_t axis_full_taps(int64_t o, int64_t up, int64_t down, int64_t pad0, int64_t fsize) {
    const int64_t t0 = o * down - pad0;
    return static_cast<int32_t>(floor_div(t0 + fsize - 1, up) + floor_div(-t0, up) + 1);
}

// One output pixel: sum over the taps of both axes of g[ky][kx] * x[iy][ix].
//   x:   the input plane (channel) with strides sy, sx (elements)
//   g:   the prepared filter taps [fh][fw] in the accumulator type, row stride fw (flip and gain folded in)
//   ty, tx: axis_taps() for this output row / column
// MAXTY / MAXTX > 0 are compile-time bounds on ty.n / tx.n (so the loops unroll); 0 means unbounded.
template <typename scalar_t, typename acc_t, int MAXTY = 0, int MAXTX = 0>
LG_HOST_DEVICE inline acc_t pixel(const scalar_t* x, int64_t sy, int64_t sx, const acc_t* g, int64_t fw,
                                  int64_t upy, int64_t upx, const AxisTaps& ty, const AxisTaps& tx) {
    acc_t sum = acc_t(0);
    const scalar_t* xrow = x + ty.i0 * sy + tx.i0 * sx;
    const acc_t* grow = g + static_cast<int64_t>(ty.k0) * fw + tx.k0;
    const int ny = MAXTY > 0 ? MAXTY : ty.n;
    const int nx = MAXTX > 0 ? MAXTX : tx.n;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int a = 0; a < ny; ++a) {
        if (MAXTY > 0 && a >= ty.n) break;
        const scalar_t* xp = xrow + a * sy;
        const acc_t* gp = grow + a * upy * fw;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
        for (int b = 0; b < nx; ++b) {
            if (MAXTX > 0 && b >= tx.n) break;
            sum += gp[b * upx] * static_cast<acc_t>(xp[b * sx]);
        }
    }
    return sum;
}

// Everything one output element needs (the CUDA kernel's argument).
template <typename scalar_t, typename acc_t>
struct Params {
    const scalar_t* x;
    scalar_t* y;
    const acc_t* g;  // [fh][fw] correlation taps, flip and gain folded in
    int64_t C, H, W, Ho, Wo;
    int64_t xs[4];  // strides of x in elements, order N, C, H, W (any layout)
    int64_t ys[4];  // strides of y
    int64_t upx, upy, downx, downy, padx0, pady0, fh, fw;
    int64_t total;  // number of output elements
};

// Output element i: i runs along W fastest (NCHW order) or along C fastest (CL, channels-last
// order), so that consecutive threads touch consecutive memory. UP / DOWN > 0 are compile-time
// values of up / down on both axes (0: read from p); MAXT > 0 bounds the taps per axis.
template <typename scalar_t, typename acc_t, typename index_t, bool CL, int UP, int DOWN, int MAXT>
LG_HOST_DEVICE inline void element(const Params<scalar_t, acc_t>& p, index_t i) {
    const int64_t upx = UP > 0 ? UP : p.upx, upy = UP > 0 ? UP : p.upy;
    const int64_t downx = DOWN > 0 ? DOWN : p.downx, downy = DOWN > 0 ? DOWN : p.downy;
    const index_t C = static_cast<index_t>(p.C), Ho = static_cast<index_t>(p.Ho), Wo = static_cast<index_t>(p.Wo);
    index_t n, c, oy, ox, r = i;
    if (CL) {
        c = r % C;
        r /= C;
        ox = r % Wo;
        r /= Wo;
        oy = r % Ho;
        n = r / Ho;
    } else {
        ox = r % Wo;
        r /= Wo;
        oy = r % Ho;
        r /= Ho;
        c = r % C;
        n = r / C;
    }
    const AxisTaps ty = axis_taps(oy, upy, downy, p.pady0, p.H, p.fh);
    const AxisTaps tx = axis_taps(ox, upx, downx, p.padx0, p.W, p.fw);
    const scalar_t* xp = p.x + static_cast<int64_t>(n) * p.xs[0] + static_cast<int64_t>(c) * p.xs[1];
    const acc_t v = pixel<scalar_t, acc_t, MAXT, MAXT>(xp, p.xs[2], p.xs[3], p.g, p.fw, upy, upx, ty, tx);
    p.y[static_cast<int64_t>(n) * p.ys[0] + static_cast<int64_t>(c) * p.ys[1] + static_cast<int64_t>(oy) * p.ys[2] +
        static_cast<int64_t>(ox) * p.ys[3]] = static_cast<scalar_t>(v);
}

// The specialisations of element() the kernels are compiled for: calls
// fn(integral_constant UP, integral_constant DOWN, integral_constant MAXT). The StyleGAN2 cases
// (up 2, down 2, or neither, same on both axes, filter at most 4x4) get constant up/down and tap
// bounds; everything else gets the generic <0, 0, 0>.
template <typename Fn>
inline void dispatch_specialisation(int64_t upx, int64_t upy, int64_t downx, int64_t downy, int64_t fh, int64_t fw,
                                    Fn&& fn) {
    const bool uniform = upx == upy && downx == downy && fh <= 4 && fw <= 4;
    using I = int;
    if (uniform && upx == 2 && downx == 1)
        fn(std::integral_constant<I, 2>{}, std::integral_constant<I, 1>{}, std::integral_constant<I, 2>{});
    else if (uniform && upx == 1 && downx == 2)
        fn(std::integral_constant<I, 1>{}, std::integral_constant<I, 2>{}, std::integral_constant<I, 4>{});
    else if (uniform && upx == 1 && downx == 1)
        fn(std::integral_constant<I, 1>{}, std::integral_constant<I, 1>{}, std::integral_constant<I, 4>{});
    else
        fn(std::integral_constant<I, 0>{}, std::integral_constant<I, 0>{}, std::integral_constant<I, 0>{});
}

}  // namespace lg_upfirdn2d
