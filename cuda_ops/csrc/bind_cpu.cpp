// Python bindings of the CPU kernels (the only file here that includes torch/extension.h).
#include <torch/extension.h>
#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act_cpu, "fused bias + activation + gain + clamp (CPU)");
    m.def("upfirdn2d", &upfirdn2d_cpu, "upsample, FIR filter, downsample with a 2D filter (CPU)");
}
