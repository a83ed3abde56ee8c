"""Ahead-of-time build of the CUDA kernels from setup.py, as cuda_ops._ops_cuda, when torch with CUDA
and a CUDA toolkit are both visible to the build. pip's default isolated build has no torch, so this
needs `pip install --no-build-isolation .`; otherwise the kernels build on first use instead.
LEAKGUARD_AOT=0 skips it. Imported by setup.py only."""
import os


def setup_kwargs(repo_root: str) -> dict:
    """`ext_modules` and `cmdclass` for setup(), or {} when the CUDA kernels cannot be built now."""
    if os.environ.get("LEAKGUARD_AOT", "1") == "0":
        return {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        return {}
    if torch.version.cuda is None or cpp_extension.CUDA_HOME is None:
        return {}
    from cuda_ops._kernels import AHEAD_OF_TIME, SPECS  # the same sources and flags as the just-in-time build
    spec = SPECS["cuda"]
    ext = cpp_extension.CUDAExtension(AHEAD_OF_TIME["cuda"], [os.path.relpath(s, repo_root) for s in spec.sources],
                                      extra_compile_args={"cxx": list(spec.cflags), "nvcc": list(spec.cuda_cflags)})
    return {"ext_modules": [ext], "cmdclass": {"build_ext": cpp_extension.BuildExtension}}
