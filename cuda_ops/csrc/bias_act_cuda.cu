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

#include "bias_act_math.h"
#include "cuda_launch.cuh"  // current stream, SM count, CUDAGuard, C10_CUDA_KERNEL_LAUNCH_CHECK
#include "ops.h"

namespace {

using namespace lg_bias_act;

constexpr int kThreads = 256;
constexpr int kBlocksPerSM = 8;  // grid cap: enough resident blocks, then the loop strides

// Compute type: double for double, float for float and half.
template <typename scalar_t>
using compute_t = typename std::conditional<std::is_same<scalar_t, double>::value, double, float>::type;

// y[o] = f(x[o], r[o] + b[(o / inner) % C]) over the n elements of flat memory. b == nullptr: no bias.
// index_t is 32-bit when n (plus one grid stride) fits, so the channel division is a 32-bit one.
template <int A, int G, bool Cl, typename scalar_t, typename index_t>
__global__ void __launch_bounds__(kThreads)
    bias_act_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ r, const scalar_t* __restrict__ b,
                    scalar_t* __restrict__ y, index_t n, index_t inner, index_t channels,
                    compute_t<scalar_t> alpha, compute_t<scalar_t> gain, compute_t<scalar_t> clamp) {
  using T = compute_t<scalar_t>;
  const index_t stride = static_cast<index_t>(blockDim.x) * static_cast<index_t>(gridDim.x);
  for (index_t o = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < n; o += stride) {
    T z = static_cast<T>(r[o]);
    if (b != nullptr) z += static_cast<T>(b[(o / inner) % channels]);
    const T xv = G == 0 ? z : static_cast<T>(x[o]);  // grad 0 ignores x (it is r)
    y[o] = static_cast<scalar_t>(bias_act_elem<A, G, Cl, T>(xv, z, alpha, gain, clamp));
  }
}

// `t` laid out exactly like `like` (same sizes and strides): itself when it already is, else a copy.
at::Tensor as_layout_of(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides()) return t;
  at::Tensor out = at::empty_like(like);
  out.copy_(t);
  return out;
}

}  // namespace

at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad,
                         int64_t dim, int64_t act, double alpha, double gain, double clamp) {
  TORCH_CHECK(x.defined(), "bias_act_cuda: x is undefined");
  TORCH_CHECK(x.is_cuda(), "bias_act_cuda: x must be a CUDA tensor, got one on ", x.device());
  TORCH_CHECK(x.layout() == at::kStrided, "bias_act_cuda: x must be a strided (dense) tensor");
  TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "bias_act_cuda: x must be float16, float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act_cuda: grad must be 0, 1 or 2, got ", grad);
  TORCH_CHECK(act >= 0 && act < kNumActs, "bias_act_cuda: act code must be in [0, ", int(kNumActs),
              "), got ", act);

  const bool has_bias = b.defined() && b.numel() > 0;
  if (has_bias) {
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act_cuda: dim ", dim, " out of range for x with ", x.dim(),
                " dimensions");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(dim), "bias_act_cuda: b must have shape [", x.size(dim),
                "] (x.shape[", dim, "]), got ", b.sizes());
    TORCH_CHECK(b.scalar_type() == x.scalar_type(), "bias_act_cuda: b must have x's dtype ", x.scalar_type(),
                ", got ", b.scalar_type());
    TORCH_CHECK(b.device() == x.device(), "bias_act_cuda: b must be on ", x.device(), ", got ", b.device());
  }
  if (grad >= 1) {
    TORCH_CHECK(ref.defined(), "bias_act_cuda: ref is required for grad ", grad);
    TORCH_CHECK(ref.sizes() == x.sizes(), "bias_act_cuda: ref must have x's shape ", x.sizes(), ", got ",
                ref.sizes());
    TORCH_CHECK(ref.scalar_type() == x.scalar_type(), "bias_act_cuda: ref must have x's dtype ",
                x.scalar_type(), ", got ", ref.scalar_type());
    TORCH_CHECK(ref.device() == x.device(), "bias_act_cuda: ref must be on ", x.device(), ", got ",
                ref.device());
  }

  const c10::cuda::CUDAGuard device_guard(x.device());

  // empty_like keeps a dense x's strides exactly and gives a non-dense x a dense layout;
  // the inputs are then brought to that layout when they differ from it.
  at::Tensor y = at::empty_like(x);
  const int64_t n = y.numel();
  if (n == 0) return y;
  const at::Tensor xin = as_layout_of(x, y);
  const at::Tensor rin = grad >= 1 ? as_layout_of(ref, y) : xin;
  const at::Tensor bin = has_bias ? b.contiguous() : at::Tensor();

  int64_t channels = 1;
  int64_t inner = n;
  if (has_bias && y.size(dim) > 1) {
    channels = y.size(dim);
    inner = y.stride(dim);
    TORCH_CHECK(inner > 0 && n % (channels * inner) == 0, "bias_act_cuda: internal error: unexpected strides ",
                y.strides(), " for sizes ", y.sizes());
  }

  const int sms = lg_cuda::sm_count();
  const int64_t max_blocks = static_cast<int64_t>(sms) * kBlocksPerSM;
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, max_blocks)));
  const int64_t grid_stride = static_cast<int64_t>(blocks) * kThreads;
  // 32-bit indices when o + grid stride cannot overflow them.
  const bool use32 = n + grid_stride <= static_cast<int64_t>(std::numeric_limits<uint32_t>::max());
  const cudaStream_t stream = lg_cuda::stream();
  const bool do_clamp = clamp >= 0;

  AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "bias_act_cuda", [&] {
    using T = compute_t<scalar_t>;
    const scalar_t* xp = xin.data_ptr<scalar_t>();
    const scalar_t* rp = rin.data_ptr<scalar_t>();
    const scalar_t* bp = has_bias ? bin.data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.data_ptr<scalar_t>();
    const T a = static_cast<T>(alpha);
    const T g = static_cast<T>(gain);
    const T c = static_cast<T>(clamp);
    dispatch_act_grad(act, grad, do_clamp, [&](auto a_c, auto g_c, auto cl_c) {
      constexpr int kA = decltype(a_c)::value;
      constexpr int kG = decltype(g_c)::value;
      constexpr bool kCl = decltype(cl_c)::value;
      if (use32) {
        bias_act_kernel<kA, kG, kCl, scalar_t, uint32_t><<<blocks, kThreads, 0, stream>>>(
            xp, rp, bp, yp, static_cast<uint32_t>(n), static_cast<uint32_t>(inner), static_cast<uint32_t>(channels),
            a, g, c);
      } else {
        bias_act_kernel<kA, kG, kCl, scalar_t, int64_t><<<blocks, kThreads, 0, stream>>>(
            xp, rp, bp, yp, n, inner, channels, a, g, c);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return y;
}
