// The fused kernels' entry points. Each op has a CPU (C++/OpenMP) and a CUDA implementation with
// the same signature and the same numbers as the pure-torch reference in cuda_ops/*.py.
#pragma once
#include <ATen/ATen.h>

// bias_act, one pass over x. z = (grad == 0 ? x : ref) + b (b broadcast along `dim`; b may be empty).
//   grad 0: y = clamp(act(z) * gain, -clamp, clamp)                (x is the op's input)
//   grad 1: x * d y / d z at z                                      (x is the upstream gradient)
//   grad 2: x * d^2 y / d z^2 at z                                  (x is the upstream product)
// clamp < 0 means no clamp; the clamp's gradient passes where -clamp <= act(z) * gain <= clamp.
// act: 0 linear, 1 relu, 2 lrelu, 3 tanh, 4 sigmoid, 5 elu, 6 selu, 7 softplus, 8 swish.
// The output has x's memory layout (NCHW, channels-last, or any dense layout).
at::Tensor bias_act_cpu(const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad,
                        int64_t dim, int64_t act, double alpha, double gain, double clamp);
at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad,
                         int64_t dim, int64_t act, double alpha, double gain, double clamp);

// upfirdn2d with a 2D filter f [fh, fw]: upsample by zero insertion, pad (negative pads crop),
// convolve with f (correlate when flip is true), multiply by gain, keep every down-th pixel.
// x [N, C, H, W] -> [N, C, (H * upy + pady0 + pady1 - fh) / downy + 1, (W * upx + padx0 + padx1 - fw) / downx + 1],
// in x's memory format (channels-last in, channels-last out).
at::Tensor upfirdn2d_cpu(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                         int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                         double gain);
at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                          int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                          double gain);
