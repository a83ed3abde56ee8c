// Per-element math of bias_act, shared by the CPU (C++/OpenMP) and the CUDA kernels, so that the CPU
// tests check the very functions the GPU runs. No ATen here: plain C++17, host and device.
//
// Notation: z = x + b (grad 0) or ref + b (grad 1, 2); a(z) the activation; y = clamp(a(z) * gain).
//   grad 0: clamp(a(z) * gain, -clamp, clamp)
//   grad 1: x * gain * a'(z)  * m
//   grad 2: x * gain * a''(z) * m
// with m = 1 where -clamp <= a(z) * gain <= clamp (inclusive, like torch.clamp's backward), else 0.
// The derivative conventions at the kinks follow torch's autograd of the pure-torch reference:
// a'(z) takes the right-hand branch only for z strictly above the kink (z > 0, softplus z > 20);
// a''(z) of elu and selu is 0 at z == 0 itself (torch's elu double backward tests z < 0), and a'' of
// softplus is 0 only for z > 20. A NaN z gives relu', elu' and selu' their z > 0 value, as torch's
// backward formulas (which test z <= 0) do. With these choices the results equal torch's autograd of
// the reference also for NaN, infinite and signed-zero inputs.
#pragma once

#include <math.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#ifdef __CUDACC__
#define LG_HOST_DEVICE __host__ __device__
#define LG_INLINE LG_HOST_DEVICE __forceinline__
#else
#define LG_HOST_DEVICE
#define LG_INLINE LG_HOST_DEVICE inline
#endif

namespace lg_bias_act {

enum Act : int {
  kLinear = 0,
  kRelu = 1,
  kLrelu = 2,
  kTanh = 3,
  kSigmoid = 4,
  kElu = 5,
  kSelu = 6,
  kSoftplus = 7,
  kSwish = 8,
  kNumActs = 9,
};

constexpr double kSeluScale = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;
constexpr double kSoftplusThreshold = 20.0;  // F.softplus's default (beta 1)

// Math functions by compute type: the float overloads call the single-precision C functions, which
// exist on the host (libm) and on the device (CUDA's math library) alike.
LG_INLINE float m_exp(float v) { return ::expf(v); }
LG_INLINE double m_exp(double v) { return ::exp(v); }
LG_INLINE float m_expm1(float v) { return ::expm1f(v); }
LG_INLINE double m_expm1(double v) { return ::expm1(v); }
LG_INLINE float m_log1p(float v) { return ::log1pf(v); }
LG_INLINE double m_log1p(double v) { return ::log1p(v); }
LG_INLINE float m_tanh(float v) { return ::tanhf(v); }
LG_INLINE double m_tanh(double v) { return ::tanh(v); }

// c ? a : b with both operands already computed. On the host it is a bitwise blend, because g++
// (under its default -ftrapping-math) will not vectorise `c ? a : a * k`: it moves the multiply
// under the condition and then may not execute it unconditionally in a vector lane. The blend keeps
// the multiply unconditional; the numbers are those of the plain conditional.
template <typename T>
struct FloatBits;
template <>
struct FloatBits<float> {
  using type = uint32_t;
};
template <>
struct FloatBits<double> {
  using type = uint64_t;
};

template <typename T>
LG_INLINE T select(bool c, T a, T b) {
#ifdef __CUDA_ARCH__
  return c ? a : b;
#else
  using U = typename FloatBits<T>::type;
  static_assert(sizeof(U) == sizeof(T), "select: unexpected float size");
  U ua, ub;
  std::memcpy(&ua, &a, sizeof(T));
  std::memcpy(&ub, &b, sizeof(T));
  const U mask = U(0) - U(c);  // all ones when c
  const U ur = (ua & mask) | (ub & ~mask);
  T out;
  std::memcpy(&out, &ur, sizeof(T));
  return out;
#endif
}

template <typename T>
LG_INLINE T m_sigmoid(T z) {
  return T(1) / (T(1) + m_exp(-z));
}

// a(z) together with a'(z) and a''(z); only the ones a call site uses survive inlining.
template <typename T>
struct ActValues {
  T value;  // a(z)
  T d1;     // a'(z)
  T d2;     // a''(z)
};

// Computes a(z) and, when G >= 1, the G-th derivative in d1 / d2. For G == 0 only `value` is set;
// for G >= 1 `value` is set too (the clamp mask needs it) but only when NeedValue.
template <int A, int G, bool NeedValue, typename T>
LG_INLINE ActValues<T> act_eval(T z, T alpha) {
  ActValues<T> r{T(0), T(0), T(0)};
  const bool pos = z > T(0);
  const bool not_neg = !(z <= T(0));  // like pos, but true for NaN: torch's relu and elu backward
  if constexpr (A == kLinear) {
    r.value = z;
    r.d1 = T(1);
    r.d2 = T(0);
  } else if constexpr (A == kRelu) {
    r.value = z < T(0) ? T(0) : z;  // keeps NaN, like torch.relu
    r.d1 = not_neg ? T(1) : T(0);
    r.d2 = T(0);
  } else if constexpr (A == kLrelu) {
    r.value = select(pos, z, z * alpha);
    r.d1 = pos ? T(1) : alpha;
    r.d2 = T(0);
  } else if constexpr (A == kTanh) {
    const T t = m_tanh(z);
    const T dt = T(1) - t * t;
    r.value = t;
    r.d1 = dt;
    r.d2 = T(-2) * t * dt;
  } else if constexpr (A == kSigmoid) {
    const T s = m_sigmoid(z);
    const T ds = s * (T(1) - s);
    r.value = s;
    r.d1 = ds;
    r.d2 = ds * (T(1) - T(2) * s);
  } else if constexpr (A == kElu) {
    if (G == 0 || NeedValue) r.value = pos ? z : m_expm1(z);
    if (G >= 1) {
      const T e = m_exp(z);
      r.d1 = not_neg ? T(1) : e;
      r.d2 = z < T(0) ? e : T(0);  // torch's elu double backward: 0 at z == 0 (unlike a'(0) = 1)
    }
  } else if constexpr (A == kSelu) {
    const T scale = T(kSeluScale);
    const T scale_alpha = T(kSeluScale * kSeluAlpha);
    if (G == 0 || NeedValue) r.value = pos ? scale * z : scale_alpha * m_expm1(z);
    if (G >= 1) {
      const T e = scale_alpha * m_exp(z);
      r.d1 = not_neg ? scale : e;
      r.d2 = z < T(0) ? e : T(0);  // as for elu: 0 at z == 0
    }
  } else if constexpr (A == kSoftplus) {
    const bool lin = z > T(kSoftplusThreshold);
    if (G == 0 || NeedValue) r.value = lin ? z : m_log1p(m_exp(z));
    if (G >= 1) {
      const T s = m_sigmoid(z);
      const T ds = s * (T(1) - s);
      r.d1 = lin ? T(1) : s;
      r.d2 = lin ? T(0) : ds;
    }
  } else if constexpr (A == kSwish) {
    const T s = m_sigmoid(z);
    const T ds = s * (T(1) - s);
    r.value = z * s;
    r.d1 = s * (T(1) + z * (T(1) - s));
    r.d2 = ds * (T(2) + z * (T(1) - T(2) * s));
  } else {
    static_assert(A >= 0 && A < kNumActs, "bias_act: unknown activation code");
  }
  return r;
}

// One output element. x: the op's input (grad 0) or the upstream gradient / product (grad 1, 2);
// z: the biased activation input. Clamp: whether the clamp is on (then clamp >= 0).
template <int A, int G, bool Clamp, typename T>
LG_INLINE T bias_act_elem(T x, T z, T alpha, T gain, T clamp) {
  static_assert(G >= 0 && G <= 2, "bias_act: grad must be 0, 1 or 2");
  const ActValues<T> a = act_eval<A, G, Clamp, T>(z, alpha);
  if constexpr (G == 0) {
    T y = a.value * gain;
    if constexpr (Clamp) {
      // Comparisons written so that NaN passes through, as torch.clamp does.
      y = y < -clamp ? -clamp : y;
      y = y > clamp ? clamp : y;
    }
    return y;
  } else {
    // Same order as autograd of the reference: the clamp's mask, then the gain, then a' or a''
    // (so an infinite or NaN derivative still gives NaN where the mask is 0, as in torch).
    T g = x;
    if constexpr (Clamp) {
      const T yg = a.value * gain;
      const bool inside = (yg >= -clamp) & (yg <= clamp);
      g = inside ? g : T(0);
    }
    return g * gain * (G == 1 ? a.d1 : a.d2);
  }
}

// Host-side helper: calls f(std::integral_constant<int, A>, std::integral_constant<int, G>,
// std::integral_constant<bool, Clamp>) for the runtime (act, grad, clamp >= 0). The caller validates
// act and grad first; out-of-range values call nothing and return false.
template <int A, typename F>
inline bool dispatch_grad_clamp(int64_t grad, bool clamp, F& f) {
  using std::integral_constant;
  switch (grad) {
    case 0:
      clamp ? f(integral_constant<int, A>{}, integral_constant<int, 0>{}, integral_constant<bool, true>{})
            : f(integral_constant<int, A>{}, integral_constant<int, 0>{}, integral_constant<bool, false>{});
      return true;
    case 1:
      clamp ? f(integral_constant<int, A>{}, integral_constant<int, 1>{}, integral_constant<bool, true>{})
            : f(integral_constant<int, A>{}, integral_constant<int, 1>{}, integral_constant<bool, false>{});
      return true;
    case 2:
      clamp ? f(integral_constant<int, A>{}, integral_constant<int, 2>{}, integral_constant<bool, true>{})
            : f(integral_constant<int, A>{}, integral_constant<int, 2>{}, integral_constant<bool, false>{});
      return true;
    default:
      return false;
  }
}

template <typename F>
inline bool dispatch_act_grad(int64_t act, int64_t grad, bool clamp, F&& f) {
  switch (act) {
    case kLinear: return dispatch_grad_clamp<kLinear>(grad, clamp, f);
    case kRelu: return dispatch_grad_clamp<kRelu>(grad, clamp, f);
    case kLrelu: return dispatch_grad_clamp<kLrelu>(grad, clamp, f);
    case kTanh: return dispatch_grad_clamp<kTanh>(grad, clamp, f);
    case kSigmoid: return dispatch_grad_clamp<kSigmoid>(grad, clamp, f);
    case kElu: return dispatch_grad_clamp<kElu>(grad, clamp, f);
    case kSelu: return dispatch_grad_clamp<kSelu>(grad, clamp, f);
    case kSoftplus: return dispatch_grad_clamp<kSoftplus>(grad, clamp, f);
    case kSwish: return dispatch_grad_clamp<kSwish>(grad, clamp, f);
    default: return false;
  }
}

}  // namespace lg_bias_act
