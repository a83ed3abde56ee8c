"""Matchers by name: an explicit dict from name to class, and the config a run or audit names one by.

    m = build_matcher(MatcherConfig(name="arcface_torch", weights="ms1mv3_r50/backbone.pth", device="cuda"))
"""
from dataclasses import asdict, dataclass
from typing import Optional

from leakguard.matchers.arcface_onnx import ArcFaceOnnx
from leakguard.matchers.arcface_torch import ArcFaceTorch
from leakguard.matchers.base import Matcher
from leakguard.matchers.dlib_matcher import DlibMatcher
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
    name: str                            # a key of MATCHERS
    weights: Optional[str] = None        # weights file, or an InsightFace model pack (arcface); null = the default
    device: str = "cpu"                  # cpu | cuda | cuda:N
    batch_size: int = 64                 # images per forward pass
    alignment: Optional[str] = None      # ffhq (StyleGAN-aligned) | none (already the crop) | detect; null = the matcher's default


def build_matcher(cfg: MatcherConfig) -> Matcher:
    """The matcher `cfg.name`, or an error listing the names there are."""
    if cfg.name not in MATCHERS:
        raise ValueError(f"unknown matcher {cfg.name!r}; valid matchers: {', '.join(MATCHERS)}")
    # null weights and alignment mean the matcher's own defaults (e.g. arcface's buffalo_l pack)
    kwargs = {k: v for k, v in asdict(cfg).items() if k != "name" and not (k in ("weights", "alignment") and v is None)}
    return MATCHERS[cfg.name](**kwargs)
