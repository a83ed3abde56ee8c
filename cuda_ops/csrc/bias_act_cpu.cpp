// bias_act on the CPU: one pass over x, parallel over chunks of memory, vectorisable inner loops.
//
// Layout: the output has x's memory layout. For a dense (non-overlapping) tensor the element at memory
// offset o lies in channel (o / stride[dim]) % size[dim], so the memory is the array [outer, C, inner]
// with inner = stride[dim], whatever the order of the other dimensions (NCHW, channels-last, ...).
// Two loops cover it without a division per element:
//   * inner >= kMinRun (e.g. NCHW, dim 1): runs of `inner` elements share one bias value;
//   * small inner (channels-last with dim 1 gives inner == 1): the bias repeats with period
//     P = C * inner, so it is expanded once into a P-long vector and added elementwise.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "bias_act_host.h"
#include "bias_act_math.h"
#include "ops.h"

namespace {

using namespace lg_bias_act;

constexpr int64_t kMinRun = 16;    // shorter channel runs use the expanded-bias loop
constexpr int64_t kGrain = 32768;  // elements per parallel task at least

// The two loops below vectorise under plain -O3 with g++ 12 for linear, relu and lrelu in float, every
// grad (in double, lrelu's forward and clamped grad 2 stay scalar); `#pragma omp simd` made no
// difference. Activations that call libm (tanh, sigmoid, elu, selu, softplus, swish) run scalar.

// y[i] = f(x[i], r[i] + bias) for one run of elements that share a channel.
template <int A, int G, bool Cl, typename T>
void run_scalar_bias(const T* __restrict__ x, const T* __restrict__ r, T* __restrict__ y, int64_t n, T bias,
                     T alpha, T gain, T clamp) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] = bias_act_elem<A, G, Cl, T>(x[i], r[i] + bias, alpha, gain, clamp);
  }
}

// y[i] = f(x[i], r[i] + bias[i]): a stretch of at most one bias period.
template <int A, int G, bool Cl, typename T>
void run_vector_bias(const T* __restrict__ x, const T* __restrict__ r, T* __restrict__ y, int64_t n,
                     const T* __restrict__ bias, T alpha, T gain, T clamp) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] = bias_act_elem<A, G, Cl, T>(x[i], r[i] + bias[i], alpha, gain, clamp);
  }
}

struct Params {
  int64_t numel;
  int64_t channels;  // C (1 when there is no bias)
  int64_t inner;     // memory stride of the channel dimension (numel when there is no bias)
};

template <int A, int G, bool Cl, typename T>
void launch(const T* x, const T* r, const T* b, T* y, const Params& p, double alpha_d, double gain_d,
            double clamp_d) {
  const T alpha = static_cast<T>(alpha_d);
  const T gain = static_cast<T>(gain_d);
  const T clamp = static_cast<T>(clamp_d);
  const int64_t C = p.channels;
  const int64_t inner = p.inner;

  if (inner >= kMinRun || b == nullptr) {
    // Adding -0.0 leaves every value (signed zeros included) unchanged: the no-bias case is exact.
    const T no_bias = static_cast<T>(-0.0);
    at::parallel_for(0, p.numel, kGrain, [&](int64_t begin, int64_t end) {
      int64_t pos = begin;
      const int64_t row = pos / inner;
      int64_t i = pos - row * inner;
      int64_t c = row % C;
      while (pos < end) {
        const int64_t len = std::min(inner - i, end - pos);
        const T bias = b != nullptr ? b[c] : no_bias;
        run_scalar_bias<A, G, Cl, T>(x + pos, r + pos, y + pos, len, bias, alpha, gain, clamp);
        pos += len;
        i = 0;
        if (++c == C) c = 0;
      }
    });
  } else {
    const int64_t period = C * inner;
    std::vector<T> expanded(static_cast<size_t>(period));
    for (int64_t c = 0; c < C; ++c) {
      std::fill_n(expanded.begin() + c * inner, inner, b[c]);
    }
    const T* bv = expanded.data();
    at::parallel_for(0, p.numel, kGrain, [&](int64_t begin, int64_t end) {
      int64_t pos = begin;
      int64_t k = pos % period;
      while (pos < end) {
        const int64_t len = std::min(period - k, end - pos);
        run_vector_bias<A, G, Cl, T>(x + pos, r + pos, y + pos, len, bv + k, alpha, gain, clamp);
        pos += len;
        k = 0;
      }
    });
  }
}

}  // namespace

at::Tensor bias_act_cpu(const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad,
                        int64_t dim, int64_t act, double alpha, double gain, double clamp) {
  TORCH_CHECK(x.defined(), "bias_act_cpu: x is undefined");
  TORCH_CHECK(x.device().is_cpu(), "bias_act_cpu: x must be a CPU tensor, got one on ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "bias_act_cpu: x must be float32 or float64, got ", x.scalar_type());
  check_args("bias_act_cpu", x, b, ref, grad, dim, act);
  const bool has_bias = b.defined() && b.numel() > 0;

  // empty_like keeps a dense x's strides exactly and gives a non-dense x a dense layout;
  // the inputs are then brought to that layout when they differ from it.
  at::Tensor y = at::empty_like(x);
  if (y.numel() == 0) return y;
  const at::Tensor xin = as_layout_of(x, y);
  const at::Tensor rin = grad >= 1 ? as_layout_of(ref, y) : xin;
  const at::Tensor bin = has_bias ? b.contiguous() : at::Tensor();

  const auto period = channel_period("bias_act_cpu", y, has_bias, dim);
  const Params p{y.numel(), period.first, period.second};

  const bool do_clamp = clamp >= 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_cpu", [&] {
    const scalar_t* xp = xin.data_ptr<scalar_t>();
    const scalar_t* rp = rin.data_ptr<scalar_t>();
    const scalar_t* bp = has_bias ? bin.data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.data_ptr<scalar_t>();
    dispatch_act_grad(act, grad, do_clamp, [&](auto a_c, auto g_c, auto cl_c) {
      launch<decltype(a_c)::value, decltype(g_c)::value, decltype(cl_c)::value, scalar_t>(xp, rp, bp, yp, p, alpha,
                                                                                          gain, clamp);
    });
  });
  return y;
}
