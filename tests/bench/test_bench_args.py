"""Bad input to the options the GPU check added: one line naming the value, exit 2, nothing written."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def script(*args, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args,says", [
    (["bench/device_rates.py", "--device", "nope"], "--device 'nope': not a device name"),
    (["bench/matchers.py", "--device", "meta"], "--device meta: the bench scripts time cpu and cuda only"),
    (["bench/matchers.py", "--file-arch", "r99"], "invalid choice: 'r99'"),
])
def test_refused_in_one_line(args, says):
    done = script(*args)
    assert done.returncode == 2 and says in done.stderr and done.stdout == ""
    assert len([line for line in done.stderr.splitlines() if "error:" in line]) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no CUDA device is visible")
def test_cuda_without_a_gpu_is_refused():
    done = script("bench/device_rates.py", "--device", "cuda")
    assert done.returncode == 2 and "no CUDA device is visible" in done.stderr and "--device cpu" in done.stderr


def test_file_models_onto_a_file_is_refused_and_the_file_kept(tmp_path):
    target = tmp_path / "models"
    target.write_text("mine")
    done = script("bench/matchers.py", "--device", "cpu", "--matchers", "synth", "--file-models", str(target))
    assert done.returncode == 2 and f"--file-models {target}: is a file; give a folder" in done.stderr
    assert target.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_device_wrapper_refuses_wheels_that_do_not_install(tmp_path):
    wheels, out = tmp_path / "wheels", tmp_path / "OUT"
    wheels.mkdir()
    out.mkdir()
    (wheels / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_device.sh"), "--smoke"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHON": sys.executable, "OUT": str(out),
                                            "LEAKGUARD_WHEELS": str(wheels), "TMPDIR": str(tmp_path),
                                            "GPU_CHECK_DIR": str(tmp_path / "work")})
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"the carried wheels in {wheels}/ did not install (bench/gpu_prepare.sh makes them)"]
    assert list(out.iterdir()) == [] and not (tmp_path / "work").exists()
