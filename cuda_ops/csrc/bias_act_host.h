// bias_act's host side for the per-element kernel: argument checks, output allocation in x's layout,
// the channel period, and the choice of instantiation; plus element(), one output value, which the
// GPU threads run. The CUDA file launches it on the GPU; tests/cuda_ops/csrc/gpu_emulation.cpp runs
// the same element() calls serially on the CPU, so the GPU's indexing is checked without a GPU.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <type_traits>
#include <utility>

#include "bias_act_math.h"

namespace lg_bias_act {

// Compute type: double for double, float for float and half.
template <typename scalar_t>
using compute_t = typename std::conditional<std::is_same<scalar_t, double>::value, double, float>::type;

template <typename scalar_t>
struct Args {
    const scalar_t* x;  // the op's input (grad 0) or the upstream gradient (grad 1, 2)
    const scalar_t* r;  // the value the derivative is taken at (x itself for grad 0)
    const scalar_t* b;  // [channels] or nullptr: no bias
    scalar_t* y;
    int64_t n, inner, channels;  // memory is [n / (channels * inner), channels, inner]
    compute_t<scalar_t> alpha, gain, clamp;
};

// y[o] = f(x[o], r[o] + b[(o / inner) % channels]) at memory offset o.
template <int A, int G, bool Cl, typename scalar_t, typename index_t>
LG_INLINE void element(const Args<scalar_t>& a, index_t o, index_t inner, index_t channels) {
    using T = compute_t<scalar_t>;
    T z = static_cast<T>(a.r[o]);
    if (a.b != nullptr) z += static_cast<T>(a.b[(o / inner) % channels]);
    const T xv = G == 0 ? z : static_cast<T>(a.x[o]);  // grad 0 ignores x (it is r)
    a.y[o] = static_cast<scalar_t>(bias_act_elem<A, G, Cl, T>(xv, z, a.alpha, a.gain, a.clamp));
}

// `t` laid out exactly like `like` (same sizes and strides): itself when it already is, else a copy.
inline at::Tensor as_layout_of(const at::Tensor& t, const at::Tensor& like) {
    if (t.strides() == like.strides()) return t;
    at::Tensor out = at::empty_like(like);
    out.copy_(t);
    return out;
}

// The argument checks both devices share (each checks its own dtypes and device).
inline void check_args(const char* op, const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad,
                       int64_t dim, int64_t act) {
    TORCH_CHECK(x.layout() == at::kStrided, op, ": x must be a strided (dense) tensor");
    TORCH_CHECK(grad >= 0 && grad <= 2, op, ": grad must be 0, 1 or 2, got ", grad);
    TORCH_CHECK(act >= 0 && act < kNumActs, op, ": act code must be in [0, ", int(kNumActs),
                "), got ", act);

    const bool has_bias = b.defined() && b.numel() > 0;
    if (has_bias) {
      TORCH_CHECK(dim >= 0 && dim < x.dim(), op, ": dim ", dim, " out of range for x with ", x.dim(),
                  " dimensions");
      TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(dim), op, ": b must have shape [", x.size(dim),
                  "] (x.shape[", dim, "]), got ", b.sizes());
      TORCH_CHECK(b.scalar_type() == x.scalar_type(), op, ": b must have x's dtype ", x.scalar_type(),
                  ", got ", b.scalar_type());
      TORCH_CHECK(b.device() == x.device(), op, ": b must be on ", x.device(), ", got ", b.device());
    }
    if (grad >= 1) {
      TORCH_CHECK(ref.defined(), op, ": ref is required for grad ", grad);
      TORCH_CHECK(ref.sizes() == x.sizes(), op, ": ref must have x's shape ", x.sizes(), ", got ",
                  ref.sizes());
      TORCH_CHECK(ref.scalar_type() == x.scalar_type(), op, ": ref must have x's dtype ",
                  x.scalar_type(), ", got ", ref.scalar_type());
      TORCH_CHECK(ref.device() == x.device(), op, ": ref must be on ", x.device(), ", got ",
                  ref.device());
    }
}

// [channels, inner] of y's memory seen as [outer, channels, inner], with b along `dim` (1, numel: no bias).
inline std::pair<int64_t, int64_t> channel_period(const char* op, const at::Tensor& y, bool has_bias, int64_t dim) {
    if (!has_bias || y.size(dim) <= 1) return {1, y.numel()};
    const int64_t channels = y.size(dim), inner = y.stride(dim);
    TORCH_CHECK(inner > 0 && y.numel() % (channels * inner) == 0, op, ": internal error: unexpected strides ",
                y.strides(), " for sizes ", y.sizes());
    return {channels, inner};
}

// Launch: a functor with template <int A, int G, bool Cl, typename scalar_t> void operator()(const Args&).
template <typename Launch>
at::Tensor run_elementwise(const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad,
                           int64_t dim, int64_t act, double alpha, double gain, double clamp, const Launch& launch) {
    TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                "bias_act: x must be float16, float32 or float64, got ", x.scalar_type());
    check_args("bias_act", x, b, ref, grad, dim, act);
    const bool has_bias = b.defined() && b.numel() > 0;

    // empty_like keeps a dense x's strides exactly and gives a non-dense x a dense layout;
    // the inputs are then brought to that layout when they differ from it.
    at::Tensor y = at::empty_like(x);
    const int64_t n = y.numel();
    if (n == 0) return y;
    const at::Tensor xin = as_layout_of(x, y);
    const at::Tensor rin = grad >= 1 ? as_layout_of(ref, y) : xin;
    const at::Tensor bin = has_bias ? b.contiguous() : at::Tensor();

    const auto period = channel_period("bias_act", y, has_bias, dim);
    const int64_t channels = period.first, inner = period.second;

    const bool do_clamp = clamp >= 0;
    AT_DISPATCH_FLOATING_TYPES_AND_HALF(x.scalar_type(), "bias_act", [&] {
      using T = compute_t<scalar_t>;
      const Args<scalar_t> args{xin.data_ptr<scalar_t>(), rin.data_ptr<scalar_t>(),
                                has_bias ? bin.data_ptr<scalar_t>() : nullptr, y.data_ptr<scalar_t>(),
                                n, inner, channels, static_cast<T>(alpha), static_cast<T>(gain), static_cast<T>(clamp)};
      dispatch_act_grad(act, grad, do_clamp, [&](auto a_c, auto g_c, auto cl_c) {
        launch.template operator()<decltype(a_c)::value, decltype(g_c)::value, decltype(cl_c)::value, scalar_t>(args);
      });
    });
    return y;
}

}  // namespace lg_bias_act
