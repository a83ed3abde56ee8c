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
#include "upfirdn2d_host.h"
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

// Runs element() once per output pixel on the GPU: a grid-stride loop, 32-bit indices when they fit.
struct GpuLaunch {
    template <typename scalar_t, typename acc_t, int UP, int DOWN, int MAXT>
    void operator()(const Params<scalar_t, acc_t>& p, bool cl) const {
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
};

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                          int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                          double gain) {
    TORCH_CHECK(x.is_cuda(), "upfirdn2d_cuda: x must be a CUDA tensor, got ", x.device());
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d_cuda: f must be on x's device ", x.device(), ", got ",
                f.device());
    c10::cuda::CUDAGuard guard(x.device());
    return lg_upfirdn2d::run_elementwise(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain,
                                         GpuLaunch{});
}
