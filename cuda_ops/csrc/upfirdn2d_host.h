// upfirdn2d's host side for the per-element kernel: argument checks, output allocation, the
// correlation taps and Params, and the choice of specialisation. The CUDA file launches the result on
// the GPU; tests/cuda_ops/csrc/gpu_emulation.cpp runs the same element() calls serially on the CPU, so
// the GPU's indexing is checked against the reference on machines without a GPU.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <type_traits>
#include <utility>

#include "upfirdn2d_math.h"

namespace lg_upfirdn2d {

// The argument checks both devices share (each checks its own dtypes), and the output's [Ho, Wo].
inline std::pair<int64_t, int64_t> checked_output_size(const char* op, const at::Tensor& x, const at::Tensor& f,
                                                       int64_t upx, int64_t upy, int64_t downx, int64_t downy,
                                                       int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1) {
    TORCH_CHECK(x.dim() == 4, op, ": x must have shape [N, C, H, W], got ", x.sizes());
    TORCH_CHECK(f.dim() == 2, op, ": f must be a 2D filter [fh, fw], got shape ", f.sizes());
    TORCH_CHECK(f.scalar_type() == x.scalar_type(), op, ": f must have x's dtype ", x.scalar_type(),
                ", got ", f.scalar_type());
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1,
                op, ": up and down must be >= 1, got up (", upx, ", ", upy, "), down (", downx, ", ",
                downy, ")");
    const int64_t fh = f.size(0), fw = f.size(1);
    TORCH_CHECK(fh >= 1 && fw >= 1, op, ": the filter must not be empty, got shape ", f.sizes());
    const int64_t H = x.size(2), W = x.size(3);
    const int64_t numy = H * upy + pady0 + pady1 - fh;
    const int64_t numx = W * upx + padx0 + padx1 - fw;
    TORCH_CHECK(numy >= 0 && numx >= 0, op, ": the output would be empty: input ", H, "x", W,
                " (HxW) upsampled by (", upy, ", ", upx, ") and padded by (", pady0, ", ", pady1, ", ", padx0, ", ",
                padx1, ") (y0, y1, x0, x1) gives ", H * upy + pady0 + pady1, "x", W * upx + padx0 + padx1,
                ", smaller than the ", fh, "x", fw, " filter");
    return {numy / downy + 1, numx / downx + 1};
}

// Launch is a functor with template <scalar_t, acc_t, UP, DOWN, MAXT> void operator()(const Params&, bool cl).
template <typename Launch>
at::Tensor run_elementwise(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                           int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                           double gain, const Launch& launch) {
    TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                "upfirdn2d: x must be float16, float32 or float64, got ", x.scalar_type());
    const auto out = checked_output_size("upfirdn2d", x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1);
    const int64_t Ho = out.first, Wo = out.second;
    const int64_t fh = f.size(0), fw = f.size(1);
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);

    const auto fmt = x.suggest_memory_format();
    at::Tensor y = at::empty({N, C, Ho, Wo}, x.options().memory_format(fmt));
    if (y.numel() == 0) return y;
    if (x.numel() == 0) return y.zero_();  // H or W is 0: the output only sees padding

    // Correlation taps in the accumulator type: g[ky][kx] = gain * f[fh-1-ky][fw-1-kx] (f[ky][kx] if flip).
    const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor g = f.to(acc_type);
    if (!flip) g = g.flip({0, 1});
    g = (g * gain).contiguous();

    const bool cl = fmt == at::MemoryFormat::ChannelsLast;

    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "upfirdn2d", [&] {
        using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
        Params<scalar_t, acc_t> p;
        p.x = x.data_ptr<scalar_t>();
        p.y = y.data_ptr<scalar_t>();
        p.g = g.data_ptr<acc_t>();
        p.C = C; p.H = H; p.W = W; p.Ho = Ho; p.Wo = Wo;
        for (int d = 0; d < 4; ++d) {
            p.xs[d] = x.stride(d);
            p.ys[d] = y.stride(d);
        }
        p.upx = upx; p.upy = upy; p.downx = downx; p.downy = downy;
        p.padx0 = padx0; p.pady0 = pady0; p.fh = fh; p.fw = fw;
        p.total = y.numel();

        lg_upfirdn2d::dispatch_specialisation(upx, upy, downx, downy, fh, fw, [&](auto up_c, auto down_c, auto maxt_c) {
            launch.template operator()<scalar_t, acc_t, decltype(up_c)::value, decltype(down_c)::value,
                                       decltype(maxt_c)::value>(p, cl);
        });
    });
    return y;
}

}  // namespace lg_upfirdn2d
