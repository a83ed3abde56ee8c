"""`leakguard doctor`: per op, device and dtype, which implementation runs and why, plus versions."""
import re

import torch

from cuda_ops import _build, _kernels, doctor
from training.cli import main


def test_doctor_reports_the_cpu_kernels_and_versions(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out and str(_build.cache_root()) in out
    assert _build.compiler_version() in out
    for op in ("bias_act", "upfirdn2d"):
        for dtype in ("float32", "float64"):
            assert re.search(rf"^{op}\s+cpu\s+{dtype}\s+cpu\s+fused cpu kernels loaded$", out, re.M), out


def test_doctor_names_the_reason_of_a_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(_build, "ninja_path", lambda: None)
    monkeypatch.setitem(_kernels.SPECS, "cpu", _build.ExtensionSpec(name="lg_doctor_ops",
                                                                     sources=_kernels.SPECS["cpu"].sources))
    _kernels.forget()
    try:
        lines = doctor.report()
    finally:
        monkeypatch.undo()
        _kernels.forget()
    rows = [line for line in lines if re.match(r"^(bias_act|upfirdn2d)\s+cpu\s", line)]
    assert len(rows) == 4 and all(re.search(r"\sref\s+ninja is not installed", r) for r in rows), rows
    assert any(line.startswith("ninja") and "not found" in line for line in lines)
