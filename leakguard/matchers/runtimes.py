"""The three runtimes a model file can run in, behind one small interface, and the check that a spec fits
its model before any face is embedded.

    rt = open_runtime(Path("fr_feature.onnx"), device)   # OnnxModel | TorchScriptModel | TFLiteModel
    check_fit(spec, rt, "fr_feature.onnx.matcher.yaml")  # layout, input size, batch and output against the model
    out = rt.run(x, spec.output)                         # x: the model's input [n, ...] float32 -> [n, D]

onnxruntime and ai-edge-litert are imported when a model of theirs is opened, not with this module.
"""
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from leakguard.matchers.file_spec import FileSpec, SpecError

Output = Union[str, int]


def _pick(names: list[str], output: Output, where: str) -> int:
    """The index of the embedding output among `names`, or an error naming the key `output`."""
    if isinstance(output, str):
        if output not in names:
            raise SpecError(f"{where}: output={output!r} is not an output of the model; its outputs: "
                            f"{', '.join(names)}")
        return names.index(output)
    if output >= len(names):
        raise SpecError(f"{where}: output={output} but the model has {len(names)} output(s): {', '.join(names)}")
    return output


class OnnxModel:
    """An .onnx file in onnxruntime (its CUDA provider where the device is cuda and it has one)."""

    differentiable = False

    def __init__(self, path: Path, device: torch.device):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("an .onnx matcher needs onnxruntime: pip install onnxruntime") from e
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
            else:
                warnings.warn(f"{path.name}: device={device} but this onnxruntime has no CUDAExecutionProvider "
                              "(pip install onnxruntime-gpu); running on the CPU")
        self.session = ort.InferenceSession(str(path), providers=providers)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise SpecError(f"{path}: the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                            "a face matcher takes one image tensor")
        self.input_name = inputs[0].name
        self.input_shape = [d if isinstance(d, int) and d > 0 else None for d in inputs[0].shape]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, x: torch.Tensor, output: Output) -> torch.Tensor:
        name = self.outputs[_pick(self.outputs, output, "spec")]
        y = self.session.run([name], {self.input_name: x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(np.asarray(y, np.float32))


class TFLiteModel:
    """A .tflite file in LiteRT (ai-edge-litert), on the CPU."""

    differentiable = False

    def __init__(self, path: Path, device: torch.device):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError("a .tflite matcher needs LiteRT: pip install ai-edge-litert") from e
        if device.type != "cpu":
            warnings.warn(f"{path.name}: device={device}, but LiteRT runs .tflite models on the CPU here")
        self.interpreter = Interpreter(model_path=str(path))
        self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise SpecError(f"{path}: the model has {len(inputs)} inputs; a face matcher takes one image tensor")
        self.input = inputs[0]
        signature = [int(d) for d in self.input.get("shape_signature", self.input["shape"])]
        self.input_shape = [d if d > 0 else None for d in signature]
        self.output_details = self.interpreter.get_output_details()
        self.outputs = [o["name"] for o in self.output_details]

    def run(self, x: torch.Tensor, output: Output) -> torch.Tensor:
        k = _pick(self.outputs, output, "spec")
        x = x.detach().cpu().numpy().astype(np.float32)
        if list(self.input["shape"]) != list(x.shape):  # a dynamic dimension: size the input to this batch
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output_details = self.interpreter.get_output_details()
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return torch.from_numpy(np.array(self.interpreter.get_tensor(self.output_details[k]["index"]), np.float32))


class TorchScriptModel:
    """A TorchScript .pt file (torch.jit.save), on the matcher's device; differentiable in its input.
    Its input shape is not declared: check_fit runs it once on zeros of the spec's shape."""

    differentiable = True

    def __init__(self, path: Path, device: torch.device):
        self.module = torch.jit.load(str(path), map_location=device).eval()
        for p in self.module.parameters():  # gradients go to the pixels, never to the weights
            p.requires_grad_(False)
        self.device = device
        self.input_shape: Optional[list] = None
        self.outputs: Optional[list] = None

    def run(self, x: torch.Tensor, output: Output) -> torch.Tensor:
        y = self.module(x.to(self.device))
        if isinstance(y, torch.Tensor):
            if output != 0:
                raise SpecError(f"spec: output={output!r} but the model returns one tensor (use output: 0)")
            return y
        if isinstance(y, dict):
            if not isinstance(output, str) or output not in y:
                raise SpecError(f"spec: output={output!r} is not an output of the model; its outputs: {', '.join(y)}")
            return y[output]
        return y[_pick([str(i) for i in range(len(y))], output, "spec")]


RUNTIMES = {".onnx": OnnxModel, ".tflite": TFLiteModel, ".pt": TorchScriptModel}


def open_runtime(path: Path, device: torch.device):
    """The runtime for the model file `path`, chosen by its suffix."""
    if path.suffix not in RUNTIMES:
        raise ValueError(f"{path}: a model file must end in {', '.join(RUNTIMES)}")
    return RUNTIMES[path.suffix](path, device)


def model_input_shape(spec: FileSpec, n: int) -> list[int]:
    """The input tensor shape the spec describes for n images."""
    h, w = spec.input_size
    return [n, 3, h, w] if spec.layout == "NCHW" else [n, h, w, 3]


def check_fit(spec: FileSpec, rt, where: str) -> None:
    """The spec fits the model: 4-d input with 3 channels where `layout` puts them, `input_size` where the
    model fixes it, `batch` equal to a fixed batch size, and an `output` the model has. One line naming the key."""
    shape = rt.input_shape
    if shape is None:  # TorchScript: no declared shape, so one forward pass on zeros tells
        _probe(spec, rt, where)
        return
    if len(shape) != 4:
        raise SpecError(f"{where}: layout={spec.layout} but the model's input has {len(shape)} dimensions "
                        f"({_show(shape)}); a face matcher's input is 4-d")
    channels, size = (shape[1], shape[2:]) if spec.layout == "NCHW" else (shape[3], shape[1:3])
    if channels not in (None, 3):
        other = "NHWC" if spec.layout == "NCHW" else "NCHW"
        raise SpecError(f"{where}: layout={spec.layout} does not fit the model's input {_show(shape)}: it would "
                        f"have {channels} colour channels (the other layout is {other})")
    for got, want, axis in zip(size, spec.input_size, ("H", "W")):
        if got is not None and got != want:
            raise SpecError(f"{where}: input_size={list(spec.input_size)} but the model's input {_show(shape)} "
                            f"({spec.layout}) has {axis}={got}")
    if shape[0] is not None and spec.batch != shape[0]:
        raise SpecError(f"{where}: batch={spec.batch} but the model's input {_show(shape)} takes batches of exactly "
                        f"{shape[0]}; set batch: {shape[0]}")
    _pick(rt.outputs, spec.output, where)


def _probe(spec: FileSpec, rt, where: str) -> None:
    shape = model_input_shape(spec, spec.batch or 1)
    try:
        with torch.no_grad():
            y = rt.run(torch.zeros(shape, device=rt.device), spec.output)
    except SpecError as e:
        raise SpecError(f"{where}: {str(e).removeprefix('spec: ')}") from None
    except Exception as e:  # whatever the scripted code raises on a wrong shape
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise SpecError(f"{where}: layout={spec.layout}, input_size={list(spec.input_size)}: the model refuses a "
                        f"{_show(shape)} input: {first}") from None
    if not isinstance(y, torch.Tensor) or y.ndim != 2 or y.shape[0] != shape[0]:
        raise SpecError(f"{where}: output={spec.output!r} is not an embedding [n, D]: got "
                        f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")


def _show(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
