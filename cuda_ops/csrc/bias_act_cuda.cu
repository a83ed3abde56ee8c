// bias_act on the GPU: one grid-stride pass over x's memory, the per-element math of
// bias_act_math.h (the same functions the CPU kernel runs, so the CPU tests cover them).
//
// Layout: the output has x's memory layout. For a dense (non-overlapping) tensor the element at memory
// offset o lies in channel (o / stride[dim]) % size[dim], whatever the order of the dimensions, so the
// kernel works on flat memory and only needs (inner = stride[dim], C = size[dim]). float16 is read and
// written as half and computed in float; float64 is computed in double.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "bias_act_host.h"
#include "bias_act_math.h"
#include "cuda_launch.cuh"  // current stream, SM count, CUDAGuard, C10_CUDA_KERNEL_LAUNCH_CHECK
#include "ops.h"

namespace {

using namespace lg_bias_act;

constexpr int kThreads = 256;
constexpr int kBlocksPerSM = 8;  // grid cap: enough resident blocks, then the loop strides

// index_t is 32-bit when n (plus one grid stride) fits, so the channel division is a 32-bit one.
template <int A, int G, bool Cl, typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kThreads) bias_act_kernel(const Args<scalar_t> a) {
  const index_t n = static_cast<index_t>(a.n), inner = static_cast<index_t>(a.inner);
  const index_t channels = static_cast<index_t>(a.channels);
  const index_t stride = static_cast<index_t>(blockDim.x) * static_cast<index_t>(gridDim.x);
  for (index_t o = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < n; o += stride)
    element<A, G, Cl, scalar_t, index_t>(a, o, inner, channels);
}

// Runs element() once per memory offset on the GPU: a grid-stride loop over at most 8 blocks per SM.
struct GpuLaunch {
  template <int A, int G, bool Cl, typename scalar_t>
  void operator()(const Args<scalar_t>& a) const {
    const int64_t max_blocks = static_cast<int64_t>(lg_cuda::sm_count()) * kBlocksPerSM;
    const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((a.n + kThreads - 1) / kThreads, max_blocks)));
    const int64_t grid_stride = static_cast<int64_t>(blocks) * kThreads;
    // 32-bit indices when o + grid stride cannot overflow them.
    const bool use32 = a.n + grid_stride <= static_cast<int64_t>(std::numeric_limits<uint32_t>::max());
    const cudaStream_t stream = lg_cuda::stream();
    if (use32)
      bias_act_kernel<A, G, Cl, scalar_t, uint32_t><<<blocks, kThreads, 0, stream>>>(a);
    else
      bias_act_kernel<A, G, Cl, scalar_t, int64_t><<<blocks, kThreads, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

}  // namespace

at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad,
                         int64_t dim, int64_t act, double alpha, double gain, double clamp) {
  TORCH_CHECK(x.defined(), "bias_act_cuda: x is undefined");
  TORCH_CHECK(x.is_cuda(), "bias_act_cuda: x must be a CUDA tensor, got one on ", x.device());
  const c10::cuda::CUDAGuard device_guard(x.device());
  return run_elementwise(x, b, ref, grad, dim, act, alpha, gain, clamp, GpuLaunch{});
}
