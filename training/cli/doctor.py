"""Report which implementation of each fused op runs here, and why.

Builds the fused kernels if they are not cached yet (a minute or two on first use), then prints, per
op, device and dtype, whether the CPU/CUDA kernels or the pure-torch reference runs, with the reason
for any fallback (no compiler, no ninja, build error with its log, unsupported dtype), plus the torch,
CUDA and compiler versions. Set LEAKGUARD_OPS=strict to make training fail instead of falling back.

example:
  leakguard doctor
"""
import argparse

from cuda_ops import doctor


def add_arguments(p: argparse.ArgumentParser) -> None:
    del p  # no options


def run(args) -> None:
    print("\n".join(doctor.report()))
