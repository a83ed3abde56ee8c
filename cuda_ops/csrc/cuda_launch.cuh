// What the CUDA kernels need from torch to launch: the current stream and the device's SM count.
// Only c10/cuda headers, so the .cu files compile without cuBLAS/cuSPARSE headers (ATen/cuda/CUDAContext.h
// pulls those in) and build fast.
#pragma once
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace lg_cuda {

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline int sm_count() {
    int count = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, c10::cuda::current_device()));
    return count;
}

}  // namespace lg_cuda
