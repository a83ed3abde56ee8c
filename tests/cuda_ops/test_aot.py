"""setup.py's ahead-of-time CUDA build: off without torch for CUDA, and when on, the same sources and
flags as the just-in-time build, under the module name the loader imports first."""
import torch
from torch.utils import cpp_extension

from cuda_ops import _aot, _kernels
from tests.conftest import REPO


def test_no_cuda_torch_means_no_extension(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert _aot.setup_kwargs(str(REPO)) == {}


def test_with_cuda_torch_and_toolkit_the_kernels_build_at_install(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", "/usr/local/cuda")
    kwargs = _aot.setup_kwargs(str(REPO))
    [ext] = kwargs["ext_modules"]
    assert ext.name == _kernels.AHEAD_OF_TIME["cuda"] == "cuda_ops._ops_cuda"
    assert [REPO / s for s in ext.sources] == list(_kernels.SPECS["cuda"].sources)
    assert all(f in ext.extra_compile_args["nvcc"] for f in _kernels.SPECS["cuda"].cuda_cflags)
    assert kwargs["cmdclass"]["build_ext"] is cpp_extension.BuildExtension
    monkeypatch.setenv("LEAKGUARD_AOT", "0")
    assert _aot.setup_kwargs(str(REPO)) == {}


def test_what_setup_py_imports_needs_no_torch():
    """pip runs setup.py in a build environment without torch: cuda_ops' package init and _aot must import
    there (an import of torch from cuda_ops/__init__.py once broke a fresh install)."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None\n"
            "import cuda_ops, cuda_ops._aot, cuda_ops.ops_mode\n"
            "print(cuda_ops.ops_mode.mode() or 'auto')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "LEAKGUARD_OPS": "ref"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ref"
