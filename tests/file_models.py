"""Face models given as files, for tests outside tests/leakguard: the tiny network of test_file_matcher.py
([n, 3, 32, 32] -> [n, 16]) saved as ONNX or TorchScript, with its MODEL.matcher.yaml beside it."""
import warnings
from pathlib import Path

import torch

from tests.leakguard.test_file_matcher import SIZE, export_onnx, net, write_spec


def onnx_model(folder, name: str = "tiny.onnx", seed: int = 0, **spec) -> Path:
    """An ONNX model file (any batch size) and its spec; `spec` changes keys of test_file_matcher.SPEC."""
    path = Path(folder) / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.onnx's TorchScript-based exporter
        export_onnx(net(seed), path)
    write_spec(path, **spec)
    return path


def torchscript_model(folder, name: str = "tiny.pt", seed: int = 0, **spec) -> Path:
    """A TorchScript model file and its spec (output 0: a traced module has no output names)."""
    path = Path(folder) / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # torch.jit's deprecation in favour of torch.export
        torch.jit.save(torch.jit.trace(net(seed), torch.zeros(1, 3, SIZE, SIZE)), str(path))
    write_spec(path, **{"output": 0, **spec})
    return path
