"""Matchers by name: an explicit dict from name to class, and the config a run or audit names one by.

    m = build_matcher(MatcherConfig(name="arcface_torch", weights="ms1mv3_r50/backbone.pth", device="cuda"))
    m = build_matcher(MatcherConfig(name="adaface", weights="adaface_ir50.pt"))  # any name: a model file with a
                                                                                 # sidecar spec (file_matcher.py)
"""
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from leakguard.matchers.arcface_onnx import ArcFaceOnnx
from leakguard.matchers.arcface_torch import ArcFaceTorch
from leakguard.matchers.base import Matcher
from leakguard.matchers.dlib_matcher import DlibMatcher
from leakguard.matchers.file_matcher import FileMatcher
from leakguard.matchers.file_spec import has_spec, read_spec, spec_path
from leakguard.matchers.facenet import FaceNet
from leakguard.matchers.sphereface import SphereFace
from leakguard.matchers.synth import SynthMatcher, SynthMatcherB

# Modules import their heavy packages (dlib, onnxruntime, insightface) only when a matcher is built.
MATCHERS: dict[str, type[Matcher]] = {
    "arcface": ArcFaceOnnx,
    "arcface_torch": ArcFaceTorch,
    "dlib": DlibMatcher,
    "facenet": FaceNet,
    "sphereface": SphereFace,
    "synth": SynthMatcher,
    "synth_b": SynthMatcherB,
}
# The matchers whose embedding keeps the autograd graph to the pixels: the leakage regularizer's choices.
DIFFERENTIABLE: tuple[str, ...] = tuple(name for name, cls in MATCHERS.items() if cls.differentiable)


@dataclass
class MatcherConfig:
    name: str                            # a key of MATCHERS, or any name for a model file with a sidecar spec
    weights: Optional[str] = None        # weights file, or an InsightFace model pack (arcface); null = the default
    device: str = "cpu"                  # cpu | cuda | cuda:N
    batch_size: int = 64                 # images per forward pass
    alignment: Optional[str] = None      # ffhq (StyleGAN-aligned) | none (already the crop) | detect; null = the matcher's default


def is_known(name: str, weights: Optional[str]) -> bool:
    """A matcher build_matcher can make: a built-in name, or a model file with its MODEL.matcher.yaml."""
    return name in MATCHERS or has_spec(weights)


def is_differentiable(name: str, weights: Optional[str]) -> bool:
    """A matcher the leakage regularizer can use: a differentiable built-in, or a TorchScript model file
    whose spec says differentiable: true."""
    if has_spec(weights):
        return read_spec(spec_path(weights), Path(weights).suffix).differentiable
    return name in DIFFERENTIABLE


def unknown_message(name: str, weights: Optional[str]) -> str:
    return (f"unknown matcher {name!r}; valid matchers: {', '.join(MATCHERS)}, or NAME=MODEL for a model file "
            f"(.onnx, .pt, .tflite) with a MODEL.matcher.yaml spec beside it"
            + (f" ({weights}: no such model file with a spec)" if weights else ""))


def build_matcher(cfg: MatcherConfig) -> Matcher:
    """The matcher `cfg.name`, or the model file cfg.weights described by its sidecar spec (whatever the
    name: the file decides), or an error listing the names there are."""
    if has_spec(cfg.weights):
        return FileMatcher(cfg.weights, name=cfg.name, device=cfg.device, batch_size=cfg.batch_size,
                           alignment=cfg.alignment)
    if cfg.name not in MATCHERS:
        raise ValueError(unknown_message(cfg.name, cfg.weights))
    # null weights and alignment mean the matcher's own defaults (e.g. arcface's buffalo_l pack)
    kwargs = {k: v for k, v in asdict(cfg).items() if k != "name" and not (k in ("weights", "alignment") and v is None)}
    return MATCHERS[cfg.name](**kwargs)
