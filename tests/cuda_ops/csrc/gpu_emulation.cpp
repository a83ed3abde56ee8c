// The CUDA kernels' code on the CPU: the same host sides (run_elementwise in upfirdn2d_host.h and
// bias_act_host.h: checks, layouts, parameters, instantiations) and the same element() calls the GPU
// threads make, run in a serial loop instead of a grid. Test-only: it lets a machine without a GPU
// check the GPU's indexing.
#include <torch/extension.h>

#include <cstdint>
#include <limits>

#include "bias_act_host.h"
#include "upfirdn2d_host.h"

namespace {

struct SerialLaunch {
    template <typename scalar_t, typename acc_t, int UP, int DOWN, int MAXT>
    void operator()(const lg_upfirdn2d::Params<scalar_t, acc_t>& p, bool cl) const {
        // The GPU takes 32-bit indices when they fit; so does this loop.
        if (p.total <= std::numeric_limits<int32_t>::max()) {
            for (int32_t i = 0; i < static_cast<int32_t>(p.total); ++i) {
                if (cl) lg_upfirdn2d::element<scalar_t, acc_t, int32_t, true, UP, DOWN, MAXT>(p, i);
                else lg_upfirdn2d::element<scalar_t, acc_t, int32_t, false, UP, DOWN, MAXT>(p, i);
            }
        } else {
            for (int64_t i = 0; i < p.total; ++i) {
                if (cl) lg_upfirdn2d::element<scalar_t, acc_t, int64_t, true, UP, DOWN, MAXT>(p, i);
                else lg_upfirdn2d::element<scalar_t, acc_t, int64_t, false, UP, DOWN, MAXT>(p, i);
            }
        }
    }
};

struct SerialBiasActLaunch {
    template <int A, int G, bool Cl, typename scalar_t>
    void operator()(const lg_bias_act::Args<scalar_t>& a) const {
        // The GPU takes 32-bit unsigned indices when they fit; so does this loop.
        if (a.n <= static_cast<int64_t>(std::numeric_limits<uint32_t>::max()) / 2) {
            const auto inner = static_cast<uint32_t>(a.inner), channels = static_cast<uint32_t>(a.channels);
            for (uint32_t o = 0; o < static_cast<uint32_t>(a.n); ++o)
                lg_bias_act::element<A, G, Cl, scalar_t, uint32_t>(a, o, inner, channels);
        } else {
            for (int64_t o = 0; o < a.n; ++o) lg_bias_act::element<A, G, Cl, scalar_t, int64_t>(a, o, a.inner, a.channels);
        }
    }
};

at::Tensor bias_act(const at::Tensor& x, const at::Tensor& b, const at::Tensor& ref, int64_t grad, int64_t dim,
                    int64_t act, double alpha, double gain, double clamp) {
    return lg_bias_act::run_elementwise(x, b, ref, grad, dim, act, alpha, gain, clamp, SerialBiasActLaunch{});
}

at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                     double gain) {
    return lg_upfirdn2d::run_elementwise(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain,
                                         SerialLaunch{});
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act, "the CUDA bias_act kernel's per-element code, run serially on the CPU");
    m.def("upfirdn2d", &upfirdn2d, "the CUDA upfirdn2d kernel's per-element code, run serially on the CPU");
}
