"""The CUDA sources compile with nvcc against this torch's headers, so a CPU-only machine (CI) catches
CUDA build errors before a GPU user does. Runs where nvcc is installed; the GPU tests run the kernels."""
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from torch.utils.cpp_extension import include_paths

from cuda_ops import _build, _kernels


def _nvcc_command(source, out):
    includes = [f"-I{p}" for p in include_paths()]
    # The CPU wheel of torch ships the c10/cuda headers but not the CMake-generated macros file.
    return [_build.nvcc_path(), "-c", "-std=c++20", "-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE",
            *_kernels.SPECS["cuda"].cuda_cflags, *includes, f"-I{sys.prefix}/include", "-o", str(out), str(source)]


@pytest.mark.skipif(_build.nvcc_path() is None, reason="nvcc is not installed")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    sources = [s for s in _kernels.SPECS["cuda"].sources if s.suffix == ".cu"]
    assert sources
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda s: subprocess.run(_nvcc_command(s, tmp_path / f"{s.stem}.o"),
                                                      capture_output=True, text=True), sources))
    for source, run in zip(sources, runs):
        assert run.returncode == 0, f"nvcc failed on {source.name}:\n{run.stderr[-4000:]}"
        assert (tmp_path / f"{source.stem}.o").stat().st_size > 0
