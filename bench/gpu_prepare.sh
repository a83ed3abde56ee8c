#!/usr/bin/env bash
# Here, before a GPU check on a lent machine (docs/performance.md, "GPU check"): puts into the repository what
# that machine lacks and cannot download, as git-ignored folders the device call carries:
#   .whl/        the Python packages its image does not have (x86-64, CPython 3.12 wheels; about 1 MB)
#   .fixtures/   the official StyleGAN2 outputs of ../shared/fixtures/stylegan2 (or $LEAKGUARD_FIXTURES/stylegan2)
# Then, on the machine: bash bench/gpu_device.sh (carry .whl and .fixtures).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The image has torch, numpy, scipy, PyYAML, pytest, onnx, onnxruntime, scikit-image, matplotlib, tensorboard and
# ninja; these four (and dm-tree, dp-accounting's one dependency it lacks) are what every test module and bench
# script imports beyond them. The versions are the ones the CPU test suite runs with.
WHEELS="omegaconf==2.4.0 opacus==1.6.0 dp-accounting==0.6.0 dm-tree==0.1.10"
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $WHEELS
fixtures=${LEAKGUARD_FIXTURES:-$root/../shared/fixtures}/stylegan2
if [ -d "$fixtures" ]; then
    rm -rf .fixtures && mkdir -p .fixtures && cp -r "$fixtures" .fixtures/stylegan2
else
    echo "no official fixtures at $fixtures: the parity tests will be skipped on the GPU (and say so)" >&2
fi
echo "ready: $(ls .whl | wc -l) wheels in .whl/ ($(du -sh .whl | cut -f1)), fixtures: $(ls .fixtures/stylegan2 2>/dev/null | wc -l) files"
