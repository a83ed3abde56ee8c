"""Feature extractors for the fidelity metrics, one interface (the one the embedding store caches):

    name, version, batch_size, embedding_dim, embed(uint8 [N, 3, H, W]) -> float32 [N, D] on the CPU

    inception      the TorchScript Inception-v3 of StyleGAN2-ADA's metrics (inception-2015-12-05.pt), pool3
                   features [N, 2048]: FD on it is the FID that papers report. Never downloaded here: give its
                   path, or put it in the cache folder below.
    synthfaces     a CNN trained here to regress every SynthFaces render parameter (synth_features.py), its
                   feature layer [N, 128]: FD in features that see all that SynthFaces draws, as fd_synthfaces.
                   Needs its path (tools/train_synthfaces_features.py makes the file).
    <any matcher>  a face matcher's unit embeddings (arcface_torch, facenet, synth, ...): FD in identity space,
                   reported as fd_<matcher>, never as FID.

`metric_prefix` names every number an extractor's features give: `fid` for Inception, `fd_<name>` otherwise.
"""
import os
import warnings
from pathlib import Path

import torch

from leakguard.cache_dirs import fidelity_root
from leakguard.fidelity.synth_features import SynthFacesFeatures
from leakguard.matchers.base import Matcher
from leakguard.matchers.registry import MATCHERS, MatcherConfig, build_matcher
from leakguard.torch_files import file_sha256

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


class InceptionFeatures:
    """pool3 features of the TorchScript Inception-v3: model(uint8-valued [N, 3, H, W], return_features=True)
    resizes to 299 itself and returns [N, 2048]."""
    name = "inception"
    metric_prefix = "fid"
    embedding_dim = 2048

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu", batch_size: int = 64):
        self.path = Path(path).expanduser() if path is not None else fidelity_root() / INCEPTION_FILE
        if not self.path.is_file():
            where = "the path given" if path is not None else "the cache (no path given)"
            raise FileNotFoundError(
                f"Inception weights not found at {self.path} ({where}); download {INCEPTION_FILE} from "
                f"{INCEPTION_URL} and give its path (--features inception=PATH to `leakguard fidelity`, "
                f"eval.fidelity=[inception=PATH] in training), or put it at {fidelity_root() / INCEPTION_FILE}")
        try:
            with warnings.catch_warnings():  # the published file is TorchScript; torch.jit.load is its loader
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(str(self.path), map_location=device).eval()
        except Exception as e:  # torch.jit raises RuntimeError or ValueError for files it cannot read
            raise ValueError(f"{self.path}: not a TorchScript model ({type(e).__name__}: {str(e)[:200]}); expected "
                             f"{INCEPTION_FILE} from {INCEPTION_URL}") from None
        self.device, self.batch_size = torch.device(device), batch_size
        self.version = f"inception-{file_sha256(self.path)[:16]}"

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"inception: expected uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        out = []
        for batch in images.split(self.batch_size):
            f = self.model(batch.to(self.device), return_features=True)
            if f.ndim != 2 or f.shape[1] != self.embedding_dim:
                raise ValueError(f"{self.path}: returned features of shape {tuple(f.shape)}, expected "
                                 f"[N, {self.embedding_dim}]; is it {INCEPTION_FILE}?")
            out.append(f.float().cpu())
        return torch.cat(out) if out else torch.zeros([0, self.embedding_dim])


class MatcherFeatures:
    """A face matcher's unit embeddings as features: FD, KID and precision/recall in identity space."""

    def __init__(self, matcher: Matcher):
        self.matcher = matcher
        self.name, self.metric_prefix = matcher.name, f"fd_{matcher.name}"
        self.version, self.batch_size = matcher.version, matcher.batch_size
        self.embedding_dim = matcher.embedding_dim

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.matcher.embed(images)


def extractor_names() -> list[str]:
    return ["inception", SynthFacesFeatures.name, *MATCHERS]


def build_extractor(name: str, path: str | None = None, device: str | torch.device = "cpu", batch_size: int = 64):
    """The extractor `name` with its weights at `path` (None: its default), or an error listing the names."""
    if name == "inception":
        return InceptionFeatures(path, device, batch_size)
    if name == SynthFacesFeatures.name:
        return SynthFacesFeatures(path, device, batch_size)
    if name in MATCHERS:
        return MatcherFeatures(build_matcher(MatcherConfig(name, weights=path, device=str(device),
                                                           batch_size=batch_size)))
    raise ValueError(f"unknown feature extractor {name!r}; valid: {', '.join(extractor_names())}")
