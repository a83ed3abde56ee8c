// Python bindings of the CUDA kernels (the only file here that includes torch/extension.h).
#include <torch/extension.h>
#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act_cuda, "fused bias + activation + gain + clamp (CUDA)");
    m.def("upfirdn2d", &upfirdn2d_cuda, "upsample, FIR filter, downsample with a 2D filter (CUDA)");
}
