// upfirdn2d on the GPU: one thread per output element, grid-stride loop. Each thread finds the
// input pixels and filter taps that meet its output pixel (lg_upfirdn2d::axis_taps per axis) and
// sums them with lg_upfirdn2d::pixel(), the same code the CPU kernel's generic path runs, so the
// zero-inserted / padded image is never formed and only the taps on real pixels are read.
// The StyleGAN2 cases (up 2 or down 2 or neither, filter up to 4x4) are compiled with constant
// up/down and tap bounds so the divisions fold and the tap loops unroll; everything else takes
// the generic instantiation. Threads run along W (NCHW) or along C (channels-last) for coalescing.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda_launch.cuh"
#include "ops.h"
#include "upfirdn2d_math.h"

namespace {

using lg_upfirdn2d::Params;

template <typename scalar_t, typename acc_t, typename index_t, bool CL, int UP, int DOWN, int MAXT>
__global__ void upfirdn2d_kernel(const Params<scalar_t, acc_t> p) {
    const index_t total = static_cast<index_t>(p.total);
    const index_t stride = static_cast<index_t>(blockDim.x) * static_cast<index_t>(gridDim.x);
    for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride)
        lg_upfirdn2d::element<scalar_t, acc_t, index_t, CL, UP, DOWN, MAXT>(p, i);
}

template <typename scalar_t, typename acc_t, int UP, int DOWN, int MAXT>
void launch(const Params<scalar_t, acc_t>& p, bool cl) {
    constexpr int kThreads = 256;
    const int64_t want = (p.total + kThreads - 1) / kThreads;
    const int64_t cap = static_cast<int64_t>(lg_cuda::sm_count()) * 64;
    const unsigned blocks = static_cast<unsigned>(std::max<int64_t>(1, std::min(want, cap)));
    // 32-bit index math when no index of the grid-stride loop (up to total + grid size) overflows.
    const bool small_index = p.total + static_cast<int64_t>(blocks) * kThreads <= static_cast<int64_t>(INT32_MAX);
    cudaStream_t stream = lg_cuda::stream();
    if (small_index) {
        if (cl)
            upfirdn2d_kernel<scalar_t, acc_t, int32_t, true, UP, DOWN, MAXT><<<blocks, kThreads, 0, stream>>>(p);
        else
            upfirdn2d_kernel<scalar_t, acc_t, int32_t, false, UP, DOWN, MAXT><<<blocks, kThreads, 0, stream>>>(p);
    } else {
        if (cl)
            upfirdn2d_kernel<scalar_t, acc_t, int64_t, true, UP, DOWN, MAXT><<<blocks, kThreads, 0, stream>>>(p);
        else
            upfirdn2d_kernel<scalar_t, acc_t, int64_t, false, UP, DOWN, MAXT><<<blocks, kThreads, 0, stream>>>(p);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                          int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                          double gain) {
    TORCH_CHECK(x.is_cuda(), "upfirdn2d_cuda: x must be a CUDA tensor, got ", x.device());
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d_cuda: f must be on x's device ", x.device(), ", got ",
                f.device());
    TORCH_CHECK(x.dim() == 4, "upfirdn2d_cuda: x must have shape [N, C, H, W], got ", x.sizes());
    TORCH_CHECK(f.dim() == 2, "upfirdn2d_cuda: f must be a 2D filter [fh, fw], got shape ", f.sizes());
    TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                "upfirdn2d_cuda: x must be float16, float32 or float64, got ", x.scalar_type());
    TORCH_CHECK(f.scalar_type() == x.scalar_type(), "upfirdn2d_cuda: f must have x's dtype ", x.scalar_type(),
                ", got ", f.scalar_type());
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1,
                "upfirdn2d_cuda: up and down must be >= 1, got up (", upx, ", ", upy, "), down (", downx, ", ",
                downy, ")");
    const int64_t fh = f.size(0), fw = f.size(1);
    TORCH_CHECK(fh >= 1 && fw >= 1, "upfirdn2d_cuda: the filter must not be empty, got shape ", f.sizes());
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t numy = H * upy + pady0 + pady1 - fh;
    const int64_t numx = W * upx + padx0 + padx1 - fw;
    TORCH_CHECK(numy >= 0 && numx >= 0, "upfirdn2d_cuda: the output would be empty: input ", H, "x", W,
                " (HxW) upsampled by (", upy, ", ", upx, ") and padded by (", pady0, ", ", pady1, ", ", padx0, ", ",
                padx1, ") (y0, y1, x0, x1) gives ", H * upy + pady0 + pady1, "x", W * upx + padx0 + padx1,
                ", smaller than the ", fh, "x", fw, " filter");
    const int64_t Ho = numy / downy + 1, Wo = numx / downx + 1;

    c10::cuda::CUDAGuard guard(x.device());
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

    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "upfirdn2d_cuda", [&] {
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
            launch<scalar_t, acc_t, decltype(up_c)::value, decltype(down_c)::value, decltype(maxt_c)::value>(p, cl);
        });
    });
    return y;
}
