"""Installs LeakGuard: the StyleGAN2 trunk (training), its ops (cuda_ops) and the privacy suite (leakguard)."""
from setuptools import find_packages, setup

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
    ],
    extras_require={
        "test": ["pytest"],
    },
    entry_points={"console_scripts": ["leakguard=training.cli:main"]},
)
