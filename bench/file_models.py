"""Face models given as files for the matcher bench: arcface_torch's IResNet (random weights: the same cost as
released ones) saved as TorchScript and as ONNX, each with the MODEL.matcher.yaml spec that
leakguard.matchers.file_matcher reads (docs/matchers.md, 'Your own model'): the FFHQ crop onto the
112 x 112 ArcFace template, RGB scaled to [-1, 1].

    paths = write_file_models(Path("models"), arch="r50")   # {"file_pt": models/iresnet_r50.pt, "file_onnx": ...}
"""
import warnings
from pathlib import Path

import torch

from leakguard.matchers.file_spec import spec_path
from leakguard.matchers.nets.iresnet import LAYERS, IResNet

SIZE = 112     # px: the ArcFace crop
SPEC = ("input_size: 112\nlayout: NCHW\nchannel_order: RGB\nmean: [127.5, 127.5, 127.5]\nstd: [127.5, 127.5, 127.5]\n"
        "batch: null\npreparation: ffhq\n")


def write_file_models(folder: Path, arch: str = "r50") -> dict[str, Path]:
    """The network as `iresnet_<arch>.pt` (TorchScript, differentiable) and `iresnet_<arch>.onnx` (any batch
    size) in `folder`, with their specs; the names the matcher bench gives them, mapped to the files."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = IResNet(LAYERS[arch]).eval()
    x = torch.zeros(2, 3, SIZE, SIZE)
    script, onnx = folder / f"iresnet_{arch}.pt", folder / f"iresnet_{arch}.onnx"
    with warnings.catch_warnings():      # torch.jit and the TorchScript-based ONNX exporter are deprecated
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(net, x), str(script))
        torch.onnx.export(net, (x,), str(onnx), input_names=["pixels"], output_names=["embedding"],
                          dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}}, dynamo=False)
    spec_path(script).write_text(SPEC + "output: 0\ndifferentiable: true\n")
    spec_path(onnx).write_text(SPEC + "output: embedding\n")
    return {"file_pt": script, "file_onnx": onnx}


def runtime_of(matcher) -> str:
    """Where a file matcher's network runs: the ONNX provider it got, or TorchScript's device."""
    runtime = getattr(matcher, "runtime", None)
    session = getattr(runtime, "session", None)
    if session is not None:
        return f"onnxruntime {session.get_providers()[0]}"
    if runtime is not None and hasattr(runtime, "module"):
        return f"TorchScript on {runtime.device}"
    return type(runtime).__name__
