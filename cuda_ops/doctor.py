"""What `leakguard doctor` prints: per op and device, which implementation impl='auto' runs and why,
and the versions that decide whether the fused kernels build. Loading the kernels may build them
(once; later runs read the cache)."""
import os
import platform

import torch

from cuda_ops import _build, _impl, _kernels, bias_act

OPS = ("bias_act", "upfirdn2d")
MODE_NOTES = {"": "fallbacks log a warning", "strict": "fallbacks are errors",
              "ref": "impl='auto' runs the reference everywhere"}


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def report() -> list[str]:
    nvcc = _build.nvcc_path()
    cuda_devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    lines = [
        f"python    {platform.python_version()} ({platform.machine()})",
        f"torch     {torch.__version__} (CUDA {torch.version.cuda or 'none'}, {torch.get_num_threads()} CPU threads)",
        f"GPUs      {', '.join(cuda_devices) if cuda_devices else 'none visible'}",
        f"compiler  {_build.compiler()}: {_build.compiler_version() or 'not found'}",
        f"ninja     {_build.ninja_path() or 'not found'}",
        f"nvcc      {f'{nvcc}: {_build.nvcc_version()}' if nvcc else 'not found'}",
        f"cache     {_build.cache_root()}",
        f"mode      LEAKGUARD_OPS={os.environ.get('LEAKGUARD_OPS', '') or '(unset)'}"
        f" ({MODE_NOTES[_impl.mode()]})",
        "",
        f"{'op':<10} {'device':<7} {'dtype':<8} {'runs':<5} why",
    ]
    for op in OPS:
        for device in devices():
            for dtype in _kernels.DTYPES[device]:
                impl, why = _impl.explain(device, dtype)
                lines.append(f"{op:<10} {device:<7} {str(dtype).removeprefix('torch.'):<8} {impl:<5} {why}")
    lines.append(f"\nbias_act on cpu with impl='auto': the kernel for {', '.join(bias_act.CPU_FUSED_BY_DEFAULT)}; "
                 "the reference for the other activations (torch's vectorised exp/tanh are faster there)")
    return lines
